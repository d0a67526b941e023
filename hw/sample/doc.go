// Package sample holds the hardware health reading as it crosses process
// boundaries: Sample (a GPU and host reading), Rail, System, Zone and
// ThrottleReasons. It imports only the standard library, so the status
// document that carries a Sample can be decoded by a program (vigilctl)
// that does not link the probes or NVML. Package hw takes the readings and
// re-exports these types under their old names.
package sample
