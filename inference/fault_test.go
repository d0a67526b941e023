package inference_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/demo"
)

func TestFaultInjection(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	b := load(t, inference.Config{Name: "degraded", ModelPath: paths[demo.RoleDegraded]})
	f := inference.NewFaulty(b)
	in, out := b.NewInputs(), b.NewOutputs()
	fill(in[0].Data, 0.5)
	ctx := context.Background()
	if _, err := f.Run(ctx, far(), in, out); err != nil {
		t.Fatalf("no fault: %v", err)
	}
	clean := append([]float32(nil), out[0].Data...)

	inject := func(ft inference.Fault) {
		t.Helper()
		if err := f.Inject(ft); err != nil {
			t.Fatalf("Inject(%+v): %v", ft, err)
		}
	}

	t.Run("hang until the deadline", func(t *testing.T) {
		inject(inference.Fault{Kind: inference.FaultHang})
		_, err := f.Run(ctx, time.Now().Add(3*time.Millisecond), in, out)
		if !errors.Is(err, inference.ErrDeadline) {
			t.Fatalf("hang: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := f.Run(cctx, far(), in, out); !errors.Is(err, context.Canceled) {
			t.Fatalf("hang with a cancelled context: %v", err)
		}
	})
	t.Run("stuck holds the backend until cleared", func(t *testing.T) {
		inject(inference.Fault{Kind: inference.FaultStuck})
		var de *inference.DeadlineError
		if _, err := f.Run(ctx, time.Now().Add(2*time.Millisecond), in, out); !errors.As(err, &de) || de.Stage != "running" {
			t.Fatalf("first stuck run: %v", err)
		}
		if _, err := f.Run(ctx, time.Now().Add(2*time.Millisecond), in, out); !errors.As(err, &de) || de.Stage != "queued" {
			t.Fatalf("second run behind the stuck one: %v", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := f.Run(ctx, far(), in, out)
			done <- err
		}()
		f.Clear()
		if err := <-done; err != nil {
			t.Fatalf("run waiting behind a stuck run, after Clear: %v", err)
		}
	})
	t.Run("latency", func(t *testing.T) {
		inject(inference.Fault{Kind: inference.FaultLatency, Latency: 20 * time.Millisecond})
		res, err := f.Run(ctx, far(), in, out)
		if err != nil || res.Latency < 20*time.Millisecond {
			t.Fatalf("latency fault: %v, latency %v", err, res.Latency)
		}
		t0 := time.Now()
		if _, err := f.Run(ctx, t0.Add(5*time.Millisecond), in, out); !errors.Is(err, inference.ErrDeadline) {
			t.Fatalf("latency beyond the deadline: %v", err)
		}
		if waited := time.Since(t0); waited >= 20*time.Millisecond {
			t.Errorf("a latency fault past the deadline held the caller %v", waited)
		}
	})
	t.Run("latency spikes", func(t *testing.T) {
		inject(inference.Fault{Kind: inference.FaultLatency, Latency: 10 * time.Millisecond, Probability: 0.5})
		slow := 0
		for range 40 {
			res, err := f.Run(ctx, far(), in, out)
			if err != nil {
				t.Fatal(err)
			}
			if res.Latency >= 10*time.Millisecond {
				slow++
			}
		}
		if slow == 0 || slow == 40 {
			t.Errorf("%d of 40 runs spiked at probability 0.5", slow)
		}
	})
	t.Run("error", func(t *testing.T) {
		inject(inference.Fault{Kind: inference.FaultError})
		if _, err := f.Run(ctx, far(), in, out); !errors.Is(err, inference.ErrInjected) {
			t.Fatalf("error fault: %v", err)
		}
	})
	t.Run("nan", func(t *testing.T) {
		inject(inference.Fault{Kind: inference.FaultNaN})
		_, err := f.Run(ctx, far(), in, out)
		var ie *inference.InvalidOutputError
		if !errors.As(err, &ie) || ie.Reason != inference.InvalidNaN || !math.IsNaN(float64(out[0].Data[0])) {
			t.Fatalf("nan fault: %v, outputs %v", err, out[0].Data)
		}
	})
	t.Run("wrong but plausible", func(t *testing.T) {
		inject(inference.Fault{Kind: inference.FaultWrong, Offset: 0.3})
		if _, err := f.Run(ctx, far(), in, out); err != nil {
			t.Fatalf("wrong fault must not report an error: %v", err)
		}
		for i, v := range out[0].Data {
			lo, hi := demo.OutputRanges[i][0], demo.OutputRanges[i][1]
			want := min(max(clean[i]+0.3, lo), hi)
			if v != want {
				t.Errorf("output %d = %v, want %v (clean %v + 0.3, clamped)", i, v, want, clean[i])
			}
		}
	})
	t.Run("cleared", func(t *testing.T) {
		f.Clear()
		if _, err := f.Run(ctx, far(), in, out); err != nil {
			t.Fatal(err)
		}
		for i := range clean {
			if out[0].Data[i] != clean[i] {
				t.Fatalf("after Clear output %d = %v, want %v", i, out[0].Data[i], clean[i])
			}
		}
		if f.Fault().Kind != inference.FaultNone {
			t.Errorf("Fault() = %+v after Clear", f.Fault())
		}
	})
	t.Run("invalid faults", func(t *testing.T) {
		for _, ft := range []inference.Fault{
			{Kind: "melt"},
			{Kind: inference.FaultError, Probability: 2},
			{Kind: inference.FaultLatency},
			{Kind: inference.FaultLatency, Latency: -time.Second},
			{Kind: inference.FaultWrong},
		} {
			if err := f.Inject(ft); err == nil {
				t.Errorf("Inject(%+v) accepted", ft)
			}
		}
		if f.Fault().Kind != inference.FaultNone {
			t.Errorf("a rejected fault changed the fault in force: %+v", f.Fault())
		}
	})
}
