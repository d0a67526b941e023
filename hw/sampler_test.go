package hw

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-av/vigil/internal/clock"
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
	clk := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	s, err := NewSampler(SamplerConfig{Probe: p, Interval: time.Second, Clock: clk,
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
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Start(ctx) == nil {
		t.Error("started twice")
	}
	// One reading at once, then one per tick of the clock.
	for i := range 3 {
		if i > 0 {
			clk.Advance(time.Second)
		}
		if x := <-samples; x.Source != "nvml" || x.TemperatureC != 65 {
			t.Errorf("sample %+v", x)
		}
	}
	select {
	case x := <-samples:
		t.Errorf("a reading without a tick: %+v", x)
	default:
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
	if s.Start(ctx) == nil {
		t.Error("started after Close")
	}
	if n := clk.Tickers(); n != 0 {
		t.Errorf("%d tickers after Close", n)
	}
	if _, err := NewSampler(SamplerConfig{Probe: p}); err == nil {
		t.Error("a zero interval was accepted")
	}
}
