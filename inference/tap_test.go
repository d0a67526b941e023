package inference_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/watchdog"
)

// recordingTap keeps a copy of what it is shown.
type recordingTap struct {
	mu   sync.Mutex
	seen []tapped
}

type tapped struct {
	in, out  []float32
	servedBy watchdog.Backend
	budget   time.Duration
}

func (r *recordingTap) Answered(a inference.Tapped) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, tapped{
		in: slices.Clone(a.In[0].Data), out: slices.Clone(a.Out[0].Data),
		servedBy: a.ServedBy, budget: a.Deadline.Sub(a.Arrived),
	})
}

func (r *recordingTap) taken() []tapped {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// countingTap only counts, for the allocation test.
type countingTap struct{ n atomic.Int64 }

func (c *countingTap) Answered(inference.Tapped) { c.n.Add(1) }

// tapRouter is the three demo backends behind a router following a fresh
// watchdog's plan (hot: primary and shadow at once).
func tapRouter(t *testing.T) (*inference.Router, *inference.Backend) {
	t.Helper()
	paths := inferencetest.DemoModels(t)
	var runners [watchdog.NumBackends]inference.Runner
	for b, role := range []string{demo.RolePrimary, demo.RoleShadow, demo.RoleDegraded} {
		runners[b] = load(t, inference.Config{Name: role, ModelPath: paths[role]})
	}
	router, err := inference.NewRouter(inference.RouterConfig{}, runners, &countingReporter{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := router.Close(context.Background()); err != nil {
			t.Errorf("router close: %v", err)
		}
	})
	m, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	router.SetPlan(m.Plan())
	return router, runners[watchdog.Degraded].(*inference.Backend)
}

// TestRouterTapSeesServedAnswers: a tap gets each answered request's
// inputs and the outputs that were served, with the request's budget, and
// nothing once it is removed.
func TestRouterTapSeesServedAnswers(t *testing.T) {
	router, be := tapRouter(t)
	tap := &recordingTap{}
	router.SetTap(tap)
	in, out := be.NewInputs(), be.NewOutputs()
	rng := rand.New(rand.NewPCG(3, 4))
	var ans inference.Answer
	var sent, served [][]float32
	var by []watchdog.Backend
	for range 5 {
		randomFrame(rng, in[0].Data)
		if err := router.Infer(context.Background(), time.Now().Add(33*time.Millisecond), in, out, &ans); err != nil {
			t.Fatal(err)
		}
		if ans.Status != inference.StatusOK {
			t.Fatalf("answer %+v", ans)
		}
		sent, served = append(sent, slices.Clone(in[0].Data)), append(served, slices.Clone(out[0].Data))
		by = append(by, ans.ServedBy)
	}
	got := tap.taken()
	if len(got) != 5 {
		t.Fatalf("the tap saw %d answers, want 5", len(got))
	}
	for i, g := range got {
		if !slices.Equal(g.in, sent[i]) || !slices.Equal(g.out, served[i]) || g.servedBy != by[i] {
			t.Errorf("answer %d: the tap saw served by %s, outputs %v; the caller got %s, %v (inputs equal: %v)",
				i, g.servedBy, g.out, by[i], served[i], slices.Equal(g.in, sent[i]))
		}
		if g.budget <= 30*time.Millisecond || g.budget > 33*time.Millisecond {
			t.Errorf("answer %d: budget %v, want the caller's 33ms less the time to call Infer", i, g.budget)
		}
	}
	router.SetTap(nil)
	if err := router.Infer(context.Background(), time.Now().Add(33*time.Millisecond), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
		t.Fatalf("%v %+v", err, ans)
	}
	if n := len(tap.taken()); n != 5 {
		t.Errorf("the tap saw %d answers after it was removed", n-5)
	}
}

// TestRouterTapNotOnNoResult: a request answered NO_RESULT reaches no tap.
func TestRouterTapNotOnNoResult(t *testing.T) {
	router, be := tapRouter(t)
	tap := &countingTap{}
	router.SetTap(tap)
	var ans inference.Answer
	if err := router.Infer(context.Background(), time.Now(), be.NewInputs(), be.NewOutputs(), &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Status != inference.StatusNoResult || tap.n.Load() != 0 {
		t.Errorf("answer %+v; the tap saw %d", ans, tap.n.Load())
	}
}

// TestRouterWithTapDoesNotAllocate: the tap costs the request path no
// allocation (TestRouterDoesNotAllocate covers the router without one).
func TestRouterWithTapDoesNotAllocate(t *testing.T) {
	router, be := tapRouter(t)
	tap := &countingTap{}
	router.SetTap(tap)
	in, out := be.NewInputs(), be.NewOutputs()
	var ans inference.Answer
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if err := router.Infer(ctx, time.Now().Add(time.Second), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
			t.Fatalf("%v %+v", err, ans)
		}
	})
	if allocs != 0 {
		t.Errorf("Infer with a tap allocates %v times per request", allocs)
	}
	if tap.n.Load() < 100 {
		t.Errorf("the tap saw %d requests, want every one", tap.n.Load())
	}
}
