package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
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

// healthRecord is what the health stream holds: a reading and its error.
type healthRecord struct {
	hw.Sample
	Throttle []string `json:"throttle_reasons_names,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// startHealth picks the hardware probe (NVML, else Jetson sysfs, else
// procfs) and samples it every health.interval off the request path: each
// reading goes to the health stream and, from a GPU probe, to the watchdog;
// Xid, ECC and GPU-lost events go to the watchdog at once and to the events
// stream.
func (d *Daemon) startHealth(ctx context.Context) error {
	hc := d.cfg.Health
	opts := hw.SelectOptions{Root: hc.Root, SkipNVML: hc.Probe == "procfs" || hc.Probe == "jetson"}
	opts.NVML.Device = hc.NVMLDevice
	opts.NVML.FatalXids = hc.FatalXids
	var probe hw.Probe
	var why string
	var err error
	if hc.Probe == "procfs" {
		probe, why = hw.ProcfsProbe{Procfs: hw.Procfs{Root: hc.Root}}, "procfs: chosen by health.probe"
	} else {
		probe, why, err = hw.Select(ctx, opts)
		if err != nil {
			return fmt.Errorf("health: %w", err)
		}
		if hc.Probe != "auto" && probe.Name() != hc.Probe {
			probe.Close(ctx) //nolint:errcheck // the refusal below is the error to report
			return fmt.Errorf("health.probe %s: not available here (%s)", hc.Probe, why)
		}
	}
	gpu := probe.Name() != "procfs"
	d.health.Store(&status.HealthStatus{Probe: probe.Name(), Why: why})
	d.log.Info("hardware probe", zap.String("probe", probe.Name()), zap.String("why", why))
	s, err := hw.NewSampler(hw.SamplerConfig{
		Probe:    probe,
		Interval: hc.Interval,
		OnSample: func(x hw.Sample, err error) {
			hs := &status.HealthStatus{Probe: probe.Name(), Why: why, Sample: x}
			rec := healthRecord{Sample: x, Throttle: x.ThrottleReasons.Names()}
			if err != nil {
				hs.Error, rec.Error = err.Error(), err.Error()
			}
			d.health.Store(hs)
			if gpu {
				d.shell.Health(d.healthSample(x))
			}
			if d.tel != nil {
				if b, err := json.Marshal(rec); err == nil {
					d.tel.health.Append(b)
				}
			}
		},
		OnEvent: d.hardwareEvent,
	})
	if err != nil {
		return errors.Join(err, probe.Close(ctx))
	}
	if err := s.Start(ctx); err != nil {
		return errors.Join(err, s.Close(ctx))
	}
	d.sampler = s
	return nil
}

// hardwareEvent tells the watchdog at once what an event of the GPU probe
// (or a drill's) says, and logs and records it.
func (d *Daemon) hardwareEvent(e hw.Event) {
	d.shell.Health(eventHealth(e))
	d.log.Warn("hardware event", zap.String("kind", string(e.Kind)), zap.Uint32("xid", e.Xid), zap.Bool("fatal", e.Fatal), zap.String("detail", e.Detail))
	d.tel.event(struct {
		Type   string `json:"type"`
		At     string `json:"at"`
		Kind   string `json:"kind"`
		Xid    uint32 `json:"xid,omitempty"`
		Fatal  bool   `json:"fatal,omitempty"`
		Detail string `json:"detail,omitempty"`
	}{"hardware", e.At.UTC().Format(time.RFC3339Nano), string(e.Kind), e.Xid, e.Fatal, e.Detail})
}

// healthSample is HealthSample(x) with the GPU lost while a gpu-lost
// drill runs (drillfaults.go): the probe's clean readings must not clear
// the fault the drill reported. Unused, it costs an atomic load a reading.
func (d *Daemon) healthSample(x hw.Sample) watchdog.HealthSample {
	h := HealthSample(x)
	if d.drillGPULost.Load() {
		h.GPULost = true
	}
	return h
}

// closeHealth stops the sampler and closes its probe.
func (d *Daemon) closeHealth(ctx context.Context) error { return d.sampler.Close(ctx) }
