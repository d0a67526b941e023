// Package hw will own hardware health probes: NVML for discrete GPUs, sysfs
// for Jetson boards, procfs for CPU, memory and thermal zones, and a scripted
// fake for tests and drills. Probes run off the hot path and feed health
// samples to the watchdog.
//
// Not built yet; see the hw issue.
package hw
