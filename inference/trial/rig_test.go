package trial_test

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/inference/trial"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/onnxgraph"
	"github.com/vigil-av/vigil/watchdog"
)

// budget is the deadline budget of every request the tests send: the
// demo's 30 Hz frame.
const budget = 33 * time.Millisecond

// rig is the live ladder of the tests: the three demo models behind a
// router that follows a fresh watchdog's plan (hot: primary and shadow at
// once, degraded as last resort), with no fault anywhere.
type rig struct {
	t       *testing.T
	router  *inference.Router
	primary *inference.Backend
	in, out []inference.Tensor
	rng     *rand.Rand
	// answers counts what the served path gave: every answer, those not
	// OK, those that came after their deadline.
	answers, noResult, late int
}

func newRig(t *testing.T) *rig {
	t.Helper()
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	var runners [watchdog.NumBackends]inference.Runner
	for b, role := range []string{demo.RolePrimary, demo.RoleShadow, demo.RoleDegraded} {
		runners[b] = loadBackend(t, inference.Config{Name: role, ModelPath: paths[role]})
	}
	router, err := inference.NewRouter(inference.RouterConfig{}, runners, nil)
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
	primary := runners[watchdog.Primary].(*inference.Backend)
	return &rig{t: t, router: router, primary: primary, in: primary.NewInputs(), out: primary.NewOutputs(), rng: rand.New(rand.NewPCG(5, 6))}
}

// on returns the rig for subtest t (its counters start again at 0).
func (r *rig) on(t *testing.T) *rig {
	c := *r
	c.t, c.answers, c.noResult, c.late = t, 0, 0, 0
	return &c
}

// live is the model a candidate would replace.
func (r *rig) live() inference.ModelInfo { return r.primary.Info().Model }

// infer sends one random frame through the router with the test budget.
func (r *rig) infer() inference.Answer {
	r.t.Helper()
	for i := range r.in[0].Data {
		r.in[0].Data[i] = r.rng.Float32()
	}
	deadline := time.Now().Add(budget)
	var ans inference.Answer
	if err := r.router.Infer(context.Background(), deadline, r.in, r.out, &ans); err != nil {
		r.t.Fatalf("Infer: %v", err)
	}
	r.answers++
	if time.Now().After(deadline) {
		r.late++
	}
	if ans.Status != inference.StatusOK {
		r.noResult++
	}
	return ans
}

// drive sends frames every period until the trial has reported n samples,
// and returns them.
func (r *rig) drive(events <-chan trial.Sample, n int, period time.Duration) []trial.Sample {
	r.t.Helper()
	var got []trial.Sample
	end := time.Now().Add(60 * time.Second)
	for len(got) < n {
		if time.Now().After(end) {
			r.t.Fatalf("%d samples of %d after 60s", len(got), n)
		}
		r.infer()
		select {
		case s := <-events:
			got = append(got, s)
		case <-time.After(period):
		}
	}
	return got
}

// tapped is one request as the router's tap would show it: a random frame
// and the primary's real answer to it.
func (r *rig) tapped() inference.Tapped {
	r.t.Helper()
	in, out := r.primary.NewInputs(), r.primary.NewOutputs()
	for i := range in[0].Data {
		in[0].Data[i] = r.rng.Float32()
	}
	now := time.Now()
	if _, err := r.primary.Run(context.Background(), now.Add(time.Second), in, out); err != nil {
		r.t.Fatal(err)
	}
	return inference.Tapped{In: in, Out: out, ServedBy: watchdog.Primary, Arrived: now, Deadline: now.Add(budget)}
}

func loadBackend(t *testing.T, cfg inference.Config) *inference.Backend {
	t.Helper()
	inferencetest.Init(t)
	b, err := inference.Load(cfg)
	if err != nil {
		t.Fatalf("Load(%s): %v", cfg.ModelPath, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close %s: %v", cfg.Name, err)
		}
	})
	return b
}

// rollout writes one of demo's rollout versions of the primary.
func rollout(t *testing.T, name string) string {
	t.Helper()
	data, err := demo.GenerateRollout(name)
	return inferencetest.WriteModel(t, demo.FileName(name), data, err)
}

// candidate loads a model file as a candidate backend.
func candidate(t *testing.T, path string) *inference.Backend {
	t.Helper()
	return loadBackend(t, inference.Config{Name: "candidate", ModelPath: path, WarmupRuns: 1})
}

// poisoned writes a model on the primary's contract whose every answer is
// NaN (kind "nan": Sqrt of a negative) or +Inf ("inf": 1/0).
func poisoned(t *testing.T, kind string) string {
	t.Helper()
	b := onnxgraph.New("poisoned-" + kind)
	b.AddInput(demo.InputName, demo.InputShape...)
	b.AddNode("GlobalAveragePool", []string{demo.InputName}, []string{"pooled"})
	b.AddNode("Flatten", []string{"pooled"}, []string{"flat"}, onnxgraph.Int("axis", 1))
	switch kind {
	case "nan":
		b.AddInitializer("one", []int64{1}, []float32{1})
		b.AddNode("Add", []string{"flat", "one"}, []string{"above"})
		b.AddNode("Neg", []string{"above"}, []string{"negative"})
		b.AddNode("Sqrt", []string{"negative"}, []string{demo.OutputName})
	case "inf":
		b.AddNode("Sub", []string{"flat", "flat"}, []string{"zero"})
		b.AddNode("Reciprocal", []string{"zero"}, []string{demo.OutputName})
	default:
		t.Fatalf("poisoned(%q)", kind)
	}
	b.AddOutput(demo.OutputName, demo.OutputShape...)
	data, err := b.Marshal()
	return inferencetest.WriteModel(t, "poisoned-"+kind+".onnx", data, err)
}

// quick is a configuration for tests that want every answer sampled and
// the candidate free again as soon as it is done.
func quick() trial.Config {
	return trial.Config{SampleRate: 1, MaxRate: 1000, MaxShare: 1}
}

// start makes and starts a trial of cand whose samples come out on the
// returned channel, and stops it when the test ends.
func start(t *testing.T, cfg trial.Config, cand inference.Runner, live inference.ModelInfo) (*trial.Trial, <-chan trial.Sample) {
	t.Helper()
	events := make(chan trial.Sample, 1000)
	cfg.OnSample = func(s trial.Sample) { events <- s }
	tr, err := trial.New(cfg, cand, live)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, tr) })
	return tr, events
}

func stop(t *testing.T, tr *trial.Trial) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// panicky panics in its first run (an injected crash), then runs the
// wrapped backend.
type panicky struct {
	inference.Runner
	runs atomic.Int32
}

func (p *panicky) Run(ctx context.Context, deadline time.Time, in, out []inference.Tensor) (inference.Result, error) {
	if p.runs.Add(1) == 1 {
		panic("injected crash")
	}
	return p.Runner.Run(ctx, deadline, in, out)
}
