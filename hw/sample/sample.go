package sample

import "time"

// Sample is one reading of the hardware's health. GPU fields describe the
// GPU the primary and shadow models run on; they are zero when there is none.
type Sample struct {
	At time.Time
	// Source names the probe that took the reading ("nvml", "jetson",
	// "procfs", "script").
	Source string
	// GPULost: the device is gone (fell off the bus, driver lost it).
	GPULost bool
	// GPUSuspect: a probe call did not return within its bound, or an
	// earlier one is still stuck; the GPU or its driver may be hung. The
	// GPU fields of such a sample are zero.
	GPUSuspect bool
	// Xid is the most recent Xid error since the previous sample (0: none);
	// XidFatal says whether it needs a GPU reset.
	Xid      uint32
	XidFatal bool
	// ECCUncorrected: an uncorrectable ECC error since the previous sample.
	ECCUncorrected bool
	// Throttled: the GPU is slowed down for heat or power (one of the
	// probe's ThrottleReasonsThatCount is active).
	Throttled bool
	// ThrottleReasons are all the reasons the GPU clocks are held down now,
	// counted or not.
	ThrottleReasons ThrottleReasons
	// TemperatureC of the GPU; 0 when unknown.
	TemperatureC float64
	// SlowdownTempC is the temperature at which the GPU slows itself down;
	// 0 when unknown.
	SlowdownTempC float64
	// UtilizationPct of the GPU, 0 to 100.
	UtilizationPct float64
	// MemUsedBytes and MemTotalBytes of GPU memory (on a Jetson, the shared
	// system memory).
	MemUsedBytes, MemTotalBytes uint64
	// PowerW drawn by the GPU; 0 when unknown. On a Jetson, the sum of the
	// rails whose label names the GPU.
	PowerW float64
	// Rails are the power rails a board reports (Jetson INA3221), if any.
	Rails []Rail
	// System is the host reading (CPU load, memory, thermal zones) taken
	// with the GPU reading.
	System System
}

// Rail is one power rail of a board's power monitor.
type Rail struct {
	Name   string  `json:"name"`
	PowerW float64 `json:"power_w"`
}
