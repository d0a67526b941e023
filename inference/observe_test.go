package inference_test

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
)

// countingObserver counts answers by status, and sums their latency.
type countingObserver struct {
	ok, noResult, latency atomic.Int64
	lastReason            atomic.Uint32
}

func (c *countingObserver) ObserveAnswer(a inference.AnswerSummary) {
	switch a.Status {
	case inference.StatusOK:
		c.ok.Add(1)
	case inference.StatusNoResult:
		c.noResult.Add(1)
		c.lastReason.Store(uint32(a.Reason))
	}
	c.latency.Add(int64(a.Latency))
}

// TestRouterObserverSeesAnswers: the observer sees every answer, OK and
// NO_RESULT, with its latency and reason, once each; not a request
// refused for its inputs; and nothing once removed.
func TestRouterObserverSeesAnswers(t *testing.T) {
	router, be := tapRouter(t)
	obs := &countingObserver{}
	router.SetAnswerObserver(obs)
	in, out := be.NewInputs(), be.NewOutputs()
	var ans inference.Answer
	ctx := context.Background()
	var latency time.Duration
	for range 3 {
		if err := router.Infer(ctx, time.Now().Add(time.Second), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
			t.Fatalf("%v %+v", err, ans)
		}
		latency += ans.Latency
	}
	// A deadline already passed: NO_RESULT.
	if err := router.Infer(ctx, time.Now().Add(-time.Millisecond), in, out, &ans); err != nil || ans.Status != inference.StatusNoResult {
		t.Fatalf("%v %+v", err, ans)
	}
	latency += ans.Latency
	// A refused input: no answer.
	bad := be.NewInputs()
	bad[0].Data[0] = float32(math.NaN())
	if err := router.Infer(ctx, time.Now().Add(time.Second), bad, out, &ans); err == nil {
		t.Fatal("NaN input accepted")
	}
	if obs.ok.Load() != 3 || obs.noResult.Load() != 1 || inference.Reason(obs.lastReason.Load()) != inference.ReasonDeadlinePassed {
		t.Errorf("the observer saw %d OK, %d NO_RESULT (last %v); want 3, 1 (deadline_passed_on_arrival)",
			obs.ok.Load(), obs.noResult.Load(), inference.Reason(obs.lastReason.Load()))
	}
	if got := time.Duration(obs.latency.Load()); got != latency {
		t.Errorf("the observer summed %v of latency, the answers said %v", got, latency)
	}
	router.SetAnswerObserver(nil)
	if err := router.Infer(ctx, time.Now().Add(time.Second), in, out, &ans); err != nil {
		t.Fatal(err)
	}
	if obs.ok.Load() != 3 {
		t.Errorf("a removed observer saw %d answers", obs.ok.Load())
	}
}

// TestRouterWithObserverDoesNotAllocate: an observer costs the request
// path no allocation.
func TestRouterWithObserverDoesNotAllocate(t *testing.T) {
	router, be := tapRouter(t)
	obs := &countingObserver{}
	router.SetAnswerObserver(obs)
	in, out := be.NewInputs(), be.NewOutputs()
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		var ans inference.Answer // each request's own, as vigil-bench's are: it must not escape
		if err := router.Infer(ctx, time.Now().Add(time.Second), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
			t.Fatalf("%v %+v", err, ans)
		}
	})
	if allocs != 0 {
		t.Errorf("Infer with an observer allocates %v times per request", allocs)
	}
	if obs.ok.Load() < 100 {
		t.Errorf("the observer saw %d answers, want every one", obs.ok.Load())
	}
}
