package hw

import "github.com/vigil-av/vigil/hw/sample"

// The reading's types live in hw/sample, which imports only the standard
// library, so that programs that decode a status (vigilctl) do not link the
// probes. These aliases keep their old names here.
type (
	// Sample is one reading of the hardware's health; see sample.Sample.
	Sample = sample.Sample
	// Rail is one power rail of a board's power monitor.
	Rail = sample.Rail
	// System is a reading of the host (CPU load, memory, thermal zones).
	System = sample.System
	// Zone is one thermal zone.
	Zone = sample.Zone
	// ThrottleReasons is a set of reasons the GPU clocks are held down.
	ThrottleReasons = sample.ThrottleReasons
)
