// Package hw owns hardware health: probes that read the GPU and the system
// and turn readings into Samples the watchdog acts on.
//
// Today it holds the Sample type and Script, a scripted fake probe for tests
// and drills (a timeline of readings). The real probes — NVML for discrete
// GPUs, sysfs for Jetson boards, procfs for CPU, memory and thermal zones —
// and auto-selection arrive with the hw issue.
package hw
