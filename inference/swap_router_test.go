package inference_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/watchdog"
)

// rolloutModel writes one of the demo's rollout versions of the primary.
func rolloutModel(t *testing.T, name string) string {
	t.Helper()
	data, err := demo.GenerateRollout(name)
	return inferencetest.WriteModel(t, demo.FileName(name), data, err)
}

// streamed is one frame of a stream: what went in, what came out, and
// whether the answer came by its deadline.
type streamed struct {
	in, out []float32
	ans     inference.Answer
	late    time.Duration // > 0: the answer came after the deadline
}

// stream sends frames through a router at 30 Hz with a 33 ms deadline, one
// at a time, from a goroutine of its own, as a camera would.
type stream struct {
	frames  []streamed // written by the goroutine; read once it is over
	started atomic.Int64
	done    atomic.Int64
	stop    chan struct{}
	over    chan error
	ended   sync.Once
	err     error
}

const (
	streamPeriod   = time.Second / 30
	streamDeadline = 33 * time.Millisecond
	streamMax      = 1200 // 40 s: a bound, never reached by a passing test
)

// startStream starts the stream; a test that ends before finish stops it.
func startStream(t *testing.T, l *ladder) *stream {
	s := &stream{frames: make([]streamed, 0, streamMax), stop: make(chan struct{}), over: make(chan error, 1)}
	go func() { s.over <- s.run(l) }()
	t.Cleanup(func() { s.end() })
	return s
}

// end stops the stream and waits for its goroutine.
func (s *stream) end() error {
	s.ended.Do(func() {
		close(s.stop)
		s.err = <-s.over
	})
	return s.err
}

func (s *stream) run(l *ladder) error {
	next := time.Now()
	for i := 0; i < streamMax; i++ {
		select {
		case <-s.stop:
			return nil
		default:
		}
		randomFrame(l.rng, l.in[0].Data)
		s.started.Add(1)
		deadline := time.Now().Add(streamDeadline)
		var f streamed
		if err := l.router.Infer(context.Background(), deadline, l.in, l.out, &f.ans); err != nil {
			return fmt.Errorf("frame %d: Infer: %w", i, err)
		}
		f.late = time.Since(deadline)
		f.in = append([]float32(nil), l.in[0].Data...)
		f.out = append([]float32(nil), l.out[0].Data...)
		s.frames = append(s.frames, f)
		s.done.Add(1)
		next = next.Add(streamPeriod)
		time.Sleep(time.Until(next))
	}
	return fmt.Errorf("the stream ran %d frames without being stopped", streamMax)
}

// waitDone waits until n frames have been answered.
func (s *stream) waitDone(t *testing.T, n int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d frames answered", n), func() bool { return s.done.Load() >= n })
}

func (s *stream) finish(t *testing.T) []streamed {
	t.Helper()
	if err := s.end(); err != nil {
		t.Fatal(err)
	}
	return s.frames
}

// phase is a range of frames that a given model must have answered when
// the primary served them.
type phase struct {
	name     string
	from, to int // frames [from, to)
	model    string
}

// TestReplaceUnderStream promotes primary-v2 on the primary rung of a
// ladder (fault injectors, the watchdog's shell, hot policy) while frames
// stream through it at 30 Hz with a 33 ms deadline, then rolls back to
// the first version the same way: no answer late, none NO_RESULT, no
// change of state in the watchdog; every answer the primary served
// before the swap is the old model's, after it the new model's (equal to
// a direct run of that model, and not to the other), and the reported
// version follows. Each time the old sessions are destroyed by the time
// Replace returns.
func TestReplaceUnderStream(t *testing.T) {
	l := newLadder(t, quickConfig(watchdog.Hot))
	v1 := l.router.Backend(watchdog.Primary).Info().Model.Path
	v2 := rolloutModel(t, demo.PrimaryV2)
	s := startStream(t, l)
	s.waitDone(t, 15)

	swap := func(path, wantVersion string) (before, after int) {
		t.Helper()
		before = int(s.done.Load())
		sw, err := l.router.Replace(context.Background(), watchdog.Primary, path)
		after = int(s.started.Load())
		if err != nil {
			t.Fatalf("Replace(primary, %s): %v", path, err)
		}
		if sw.New.Path != path || sw.New.Version != wantVersion || !sw.OldClosed || sw.Load <= 0 {
			t.Errorf("swap to %s: %s; want the new model at version %s and the old one closed", path, swapText(sw), wantVersion)
		}
		if v := l.faults[watchdog.Primary].Info().Model.Version; v != wantVersion {
			t.Errorf("the primary reports version %s after the swap, want %s", v, wantVersion)
		}
		t.Logf("swap to %s %s: loaded and warmed in %v, during frames %d to %d", sw.New.Name, sw.New.Version, sw.Load, before, after)
		return before, after
	}
	if v := l.router.Backend(watchdog.Primary).Info().Model.Version; v != demo.Version {
		t.Fatalf("primary version %s before the swap, want %s", v, demo.Version)
	}
	b1, a1 := swap(v2, demo.PrimaryV2Version)
	s.waitDone(t, int64(a1+30))
	b2, a2 := swap(v1, demo.Version)
	s.waitDone(t, int64(a2+30))
	frames := s.finish(t)

	var late, noResult int
	for i, f := range frames {
		if f.late > 0 {
			late++
			t.Errorf("frame %d answered %v after its deadline: %+v", i, f.late, f.ans)
		}
		if f.ans.Status != inference.StatusOK {
			noResult++
			t.Errorf("frame %d: NO_RESULT %s", i, f.ans.Reason)
		}
	}
	t.Logf("%d frames at 30 Hz, deadline 33 ms: %d late, %d NO_RESULT; router stats %+v", len(frames), late, noResult, l.router.Stats())
	checkPhases(t, frames, []phase{
		{"before the promotion", 0, b1, v1},
		{"after the promotion", a1, b2, v2},
		{"after the rollback", a2, len(frames), v1},
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tr := range l.transitions {
		t.Errorf("watchdog transition during the swaps: %s %s -> %s (%s)", tr.Backend, tr.From, tr.To, tr.Reason)
	}
}

// checkPhases runs each frame the primary served in a phase through a
// backend of its own on the phase's model, and checks that the served
// outputs are that model's and not the other one's.
func checkPhases(t *testing.T, frames []streamed, phases []phase) {
	t.Helper()
	refs := map[string]*inference.Backend{}
	for _, p := range phases {
		if refs[p.model] == nil {
			refs[p.model] = load(t, inference.Config{ModelPath: p.model})
		}
	}
	for _, p := range phases {
		served, distinct := 0, 0
		for i := p.from; i < p.to; i++ {
			f := frames[i]
			if f.ans.Status != inference.StatusOK || f.ans.ServedBy != watchdog.Primary {
				continue
			}
			served++
			var own, other float64
			for path, ref := range refs {
				d := maxDiff(runRef(t, ref, f.in), f.out)
				if path == p.model {
					own = d
				} else {
					other = d
				}
			}
			if own > 1e-6 {
				t.Errorf("%s: frame %d differs from a direct run of %s by %g", p.name, i, p.model, own)
			}
			if other > 1e-4 {
				distinct++
			}
		}
		t.Logf("%s: frames %d to %d, %d served by the primary, %d of them told apart from the other model", p.name, p.from, p.to, served, distinct)
		if served < (p.to-p.from)/2 || distinct == 0 {
			t.Errorf("%s: %d of %d frames served by the primary, %d told apart from the other model: too few to tell", p.name, served, p.to-p.from, distinct)
		}
	}
}

func runRef(t *testing.T, b *inference.Backend, frame []float32) []float32 {
	t.Helper()
	in, out := b.NewInputs(), b.NewOutputs()
	copy(in[0].Data, frame)
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatal(err)
	}
	return out[0].Data
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, float64(abs32(a[i]-b[i])))
	}
	return d
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// serveOnce sends one frame through the router and returns the outputs,
// which the primary must have served.
func serveOnce(t *testing.T, r *inference.Router, in, out []inference.Tensor) []float32 {
	t.Helper()
	var ans inference.Answer
	if err := r.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Status != inference.StatusOK || ans.ServedBy != watchdog.Primary {
		t.Fatalf("answer %+v, want one served by the primary", ans)
	}
	return append([]float32(nil), out[0].Data...)
}

// TestRouterReplaceRefusals: each refusal names what is wrong and leaves
// the primary serving the model it served, with the same outputs.
func TestRouterReplaceRefusals(t *testing.T) {
	router, be := tapRouter(t)
	in, out := be.NewInputs(), be.NewOutputs()
	fill(in[0].Data, 0.25)
	want := serveOnce(t, router, in, out)
	before := router.Backend(watchdog.Primary).Info().Model

	empty := inferencetest.WriteModel(t, "empty.onnx", nil, nil)
	cases := []struct {
		name string
		rung watchdog.Backend
		path string
		is   error
		says string
	}{
		{"another contract", watchdog.Primary, identityModel(t, nil), inference.ErrContract, `input 0 is "x", the model in service's is "frame"`},
		{"missing file", watchdog.Primary, "/nonexistent/primary-v9.onnx", inference.ErrBadModel, "/nonexistent/primary-v9.onnx does not exist"},
		{"empty file", watchdog.Primary, empty, inference.ErrBadModel, "is empty"},
		{"no such rung", watchdog.Backend(7), rolloutModel(t, demo.PrimaryV2), nil, "no rung 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sw, err := router.Replace(context.Background(), c.rung, c.path)
			if err == nil || (c.is != nil && !errors.Is(err, c.is)) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("Replace: %v, %s; want an error saying %q", err, swapText(sw), c.says)
			}
			if c.rung.Valid() && !strings.HasPrefix(err.Error(), "router: replace "+c.rung.String()) {
				t.Errorf("error %q does not name the rung", err)
			}
			if m := router.Backend(watchdog.Primary).Info().Model; m.Path != before.Path || m.Version != before.Version {
				t.Errorf("after a refusal the primary runs %s %s, want %s %s", m.Path, m.Version, before.Path, before.Version)
			}
			if d := maxDiff(serveOnce(t, router, in, out), want); d != 0 {
				t.Errorf("after a refusal the primary's outputs moved by %g", d)
			}
		})
	}
}

// TestRouterReplaceUnloadedAndClosing: a rung with no model and a closing
// router refuse, naming why.
func TestRouterReplaceUnloadedAndClosing(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	var runners [watchdog.NumBackends]inference.Runner
	runners[watchdog.Degraded] = load(t, inference.Config{Name: "degraded", ModelPath: paths[demo.RoleDegraded]})
	router, err := inference.NewRouter(inference.RouterConfig{}, runners, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = router.Replace(context.Background(), watchdog.Shadow, paths[demo.RoleShadow])
	if err == nil || !strings.Contains(err.Error(), "router: replace shadow") || !strings.Contains(err.Error(), "no model is loaded on this rung") {
		t.Errorf("Replace on a rung with no model: %v", err)
	}
	if err := router.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = router.Replace(context.Background(), watchdog.Degraded, paths[demo.RoleDegraded])
	if !errors.Is(err, inference.ErrClosed) || !strings.Contains(err.Error(), "the router is closing") {
		t.Errorf("Replace on a closed router: %v, want ErrClosed", err)
	}
}

// TestRouterDoesNotAllocateAfterReplace: the request path allocates
// nothing with a replaced model either.
func TestRouterDoesNotAllocateAfterReplace(t *testing.T) {
	router, be := tapRouter(t)
	if _, err := router.Replace(context.Background(), watchdog.Primary, rolloutModel(t, demo.PrimaryV2)); err != nil {
		t.Fatal(err)
	}
	in, out := be.NewInputs(), be.NewOutputs()
	var ans inference.Answer
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if err := router.Infer(ctx, time.Now().Add(time.Second), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
			t.Fatalf("%v %+v", err, ans)
		}
	})
	if allocs != 0 {
		t.Errorf("Infer allocates %v times per request after a Replace", allocs)
	}
	if v := router.Backend(watchdog.Primary).Info().Model.Version; v != demo.PrimaryV2Version {
		t.Errorf("primary version %s, want %s", v, demo.PrimaryV2Version)
	}
}
