package hw

import "time"

// Sample is one reading of the hardware's health. GPU fields describe the
// GPU the primary and shadow models run on; they are zero when there is none.
type Sample struct {
	At time.Time
	// GPULost: the device is gone (fell off the bus, driver lost it).
	GPULost bool
	// Xid is the most recent Xid error since the previous sample (0: none);
	// XidFatal says whether it needs a GPU reset.
	Xid      uint32
	XidFatal bool
	// ECCUncorrected: an uncorrectable ECC error since the previous sample.
	ECCUncorrected bool
	// Throttled: the GPU is slowed down for heat or power.
	Throttled bool
	// TemperatureC of the GPU; 0 when unknown.
	TemperatureC float64
}
