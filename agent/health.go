package agent

import (
	"github.com/vigil-av/vigil/hw"
	"github.com/vigil-av/vigil/watchdog"
)

// HealthSample turns a reading of the hw probes (or of their scripted fake)
// into what the watchdog acts on. A GPU whose probe calls hang (GPUSuspect)
// counts as throttled: its backends turn suspect, so the next rung starts at
// once, until the probe answers again. The watchdog and its shell know
// nothing of hw; this adapter is the daemon's.
func HealthSample(x hw.Sample) watchdog.HealthSample {
	return watchdog.HealthSample{
		GPULost:        x.GPULost,
		Xid:            x.Xid,
		XidFatal:       x.XidFatal,
		ECCUncorrected: x.ECCUncorrected,
		Throttled:      x.Throttled || x.GPUSuspect,
		TemperatureC:   x.TemperatureC,
	}
}

// eventHealth is what an event of the GPU probe (Xid, double-bit ECC, GPU
// lost) tells the watchdog at once, before the next reading.
func eventHealth(e hw.Event) watchdog.HealthSample {
	var h watchdog.HealthSample
	switch e.Kind {
	case hw.EventGPULost:
		h.GPULost = true
	case hw.EventXid:
		h.Xid, h.XidFatal = e.Xid, e.Fatal
	case hw.EventECCDoubleBit:
		h.ECCUncorrected = true
	}
	return h
}
