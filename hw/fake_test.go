package hw

import (
	"context"
	"testing"
	"time"
)

func TestScriptPlaysInOrder(t *testing.T) {
	s := Script{
		{At: 0, Sample: Sample{TemperatureC: 60}},
		{At: 5 * time.Millisecond, Sample: Sample{GPULost: true}},
		{At: 10 * time.Millisecond, Sample: Sample{}},
	}
	var got []Sample
	start := time.Now()
	if err := s.Play(context.Background(), func(x Sample) { got = append(got, x) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].TemperatureC != 60 || !got[1].GPULost || got[2].GPULost {
		t.Fatalf("played %+v", got)
	}
	if got[1].At.Sub(start) < 5*time.Millisecond || got[2].At.Before(got[1].At) {
		t.Errorf("samples not at their times: %v, %v after start", got[1].At.Sub(start), got[2].At.Sub(start))
	}
}

func TestScriptStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := Script{{At: time.Hour, Sample: Sample{GPULost: true}}}
	if err := s.Play(ctx, func(Sample) { t.Error("emitted after cancel") }); err == nil {
		t.Error("Play returned nil for a cancelled context")
	}
	if err := (Script{{At: time.Second}, {At: 0}}).Play(context.Background(), func(Sample) {}); err == nil {
		t.Error("an out-of-order script played")
	}
}
