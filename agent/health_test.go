package agent

import (
	"testing"

	"github.com/vigil-av/vigil/hw"
	"github.com/vigil-av/vigil/watchdog"
)

func TestHealthSample(t *testing.T) {
	for _, c := range []struct {
		name string
		in   hw.Sample
		want watchdog.HealthSample
	}{
		{"quiet", hw.Sample{TemperatureC: 55}, watchdog.HealthSample{TemperatureC: 55}},
		{"throttled", hw.Sample{Throttled: true, TemperatureC: 88}, watchdog.HealthSample{Throttled: true, TemperatureC: 88}},
		{"suspect counts as throttled", hw.Sample{GPUSuspect: true}, watchdog.HealthSample{Throttled: true}},
		{"lost", hw.Sample{GPULost: true}, watchdog.HealthSample{GPULost: true}},
		{"xid", hw.Sample{Xid: 79, XidFatal: true}, watchdog.HealthSample{Xid: 79, XidFatal: true}},
		{"ecc", hw.Sample{ECCUncorrected: true}, watchdog.HealthSample{ECCUncorrected: true}},
	} {
		if got := HealthSample(c.in); got != c.want {
			t.Errorf("%s: HealthSample(%+v) = %+v, want %+v", c.name, c.in, got, c.want)
		}
	}
}

func TestEventHealth(t *testing.T) {
	for _, c := range []struct {
		in   hw.Event
		want watchdog.HealthSample
	}{
		{hw.Event{Kind: hw.EventGPULost}, watchdog.HealthSample{GPULost: true}},
		{hw.Event{Kind: hw.EventXid, Xid: 13}, watchdog.HealthSample{Xid: 13}},
		{hw.Event{Kind: hw.EventXid, Xid: 79, Fatal: true}, watchdog.HealthSample{Xid: 79, XidFatal: true}},
		{hw.Event{Kind: hw.EventECCDoubleBit}, watchdog.HealthSample{ECCUncorrected: true}},
	} {
		if got := eventHealth(c.in); got != c.want {
			t.Errorf("eventHealth(%+v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}
