package hw

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestSamplerLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeNVML()
	p, err := openNVML(context.Background(), f, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	samples := make(chan Sample, 100)
	events := make(chan Event, 10)
	s, err := NewSampler(SamplerConfig{Probe: p, Interval: time.Millisecond,
		OnSample: func(x Sample, _ error) {
			select {
			case samples <- x:
			default:
			}
		},
		OnEvent: func(e Event) { events <- e },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.Start() == nil {
		t.Error("started twice")
	}
	for range 3 {
		if x := <-samples; x.Source != "nvml" || x.TemperatureC != 65 {
			t.Errorf("sample %+v", x)
		}
	}
	f.set.events <- nvmlEvent{Type: nvmlEventXidCritical, Data: 48}
	if e := <-events; e.Xid != 48 || !e.Fatal {
		t.Errorf("event %+v", e)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if _, err := NewSampler(SamplerConfig{Probe: p}); err == nil {
		t.Error("a zero interval was accepted")
	}
}
