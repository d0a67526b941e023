package trial_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/inference/trial"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/testmodels"
	"github.com/vigil-av/vigil/watchdog"
)

// TestGoodCandidatePasses: primary-v2 beside the live primary, through
// the router's tap: every sample answered in time within the default
// tolerance, and the comparison saw the small differences v2 makes.
func TestGoodCandidatePasses(t *testing.T) {
	r := newRig(t)
	tr, events := start(t, quick(), candidate(t, rollout(t, demo.PrimaryV2)), r.live())
	r.router.SetTap(tr)
	samples := r.drive(events, 20, 10*time.Millisecond)
	var maxDiff float64
	for _, s := range samples {
		if !s.Passed() || s.Err != trial.ErrNone || s.Budget > budget || s.Budget <= 30*time.Millisecond {
			t.Errorf("sample %+v, want passed with the request's budget", s)
		}
		maxDiff = max(maxDiff, s.MaxAbsDiff)
	}
	if maxDiff == 0 || maxDiff >= demo.RolloutTolerance {
		t.Errorf("v2 differs from v1 by at most %v, want some difference below %v", maxDiff, demo.RolloutTolerance)
	}
	st := tr.Stats()
	if st.Samples < 20 || st.Passed != st.Samples || st.Failures != (trial.Failures{}) ||
		st.MaxAbsDiff < maxDiff || st.MaxAbsDiff >= demo.RolloutTolerance ||
		st.P50 <= 0 || st.P99 < st.P50 || st.MaxLatency < st.P50/2 || st.Sampled < st.Samples || st.Seen < st.Sampled {
		t.Errorf("stats %+v", st)
	}
	if r.noResult != 0 {
		t.Errorf("%d NO_RESULT answers of %d", r.noResult, r.answers)
	}
}

// TestBadCandidateDiverges: primary-bad answers, in range, far from the
// primary: every sample diverged, none passed.
func TestBadCandidateDiverges(t *testing.T) {
	r := newRig(t)
	tr, events := start(t, quick(), candidate(t, rollout(t, demo.PrimaryBad)), r.live())
	r.router.SetTap(tr)
	for _, s := range r.drive(events, 10, 10*time.Millisecond) {
		if s.Err != trial.ErrNone || s.Within || s.Passed() || s.MaxAbsDiff <= 2*demo.RolloutTolerance {
			t.Errorf("sample %+v, want a divergence beyond %v", s, 2*demo.RolloutTolerance)
		}
	}
	st := tr.Stats()
	if st.Passed != 0 || st.Failures.Diverged != st.Samples || st.MaxAbsDiff <= 2*demo.RolloutTolerance {
		t.Errorf("stats %+v", st)
	}
}

// lateSlack is how long after its deadline an abandoned run may return
// before it counts as a bug: a loaded test machine may hold a goroutine for
// a few milliseconds; a run that waited for the slow model would be far
// later.
const lateSlack = 25 * time.Millisecond

// TestSlowCandidate: primary-slow is right but late. Given time, it
// answers within tolerance and over the 33 ms budget; with a run deadline
// shorter than it needs, each run is abandoned at that deadline (the
// backend's own mechanism) and counts as a hang.
func TestSlowCandidate(t *testing.T) {
	r := newRig(t)
	slow := candidate(t, rollout(t, demo.PrimarySlow))
	t.Run("answers late", func(t *testing.T) {
		cfg := quick()
		cfg.RunTimeout = 5 * time.Second
		tr, events := start(t, cfg, slow, r.live())
		r.router.SetTap(tr)
		defer r.router.SetTap(nil)
		for _, s := range r.on(t).drive(events, 3, 10*time.Millisecond) {
			if s.Err != trial.ErrNone || !s.Within || !s.OverBudget || s.Latency <= budget || s.Passed() {
				t.Errorf("sample %+v, want within tolerance and over the budget", s)
			}
		}
		if st := tr.Stats(); st.Failures.OverBudget != st.Samples || st.P50 <= budget {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("abandoned", func(t *testing.T) {
		cfg := quick()
		cfg.RunTimeout = 10 * time.Millisecond
		before := slow.Abandoned()
		tr, events := start(t, cfg, slow, r.live())
		r.router.SetTap(tr)
		defer r.router.SetTap(nil)
		samples := r.on(t).drive(events, 3, 10*time.Millisecond)
		for _, s := range samples {
			if s.Err != trial.ErrHang || s.Within || s.Latency < cfg.RunTimeout || s.Latency > cfg.RunTimeout+lateSlack {
				t.Errorf("sample %+v, want a hang abandoned at %v", s, cfg.RunTimeout)
			}
		}
		if st := tr.Stats(); st.Failures.Hang != st.Samples {
			t.Errorf("stats %+v", st)
		}
		if n := slow.Abandoned() - before; n < int64(len(samples)) {
			t.Errorf("the backend abandoned %d runs, want %d", n, len(samples))
		}
	})
}

// TestPoisonedCandidates: candidates on the primary's contract whose
// answers are NaN or infinite count as such, and are never compared.
func TestPoisonedCandidates(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		kind  string
		want  trial.ErrorKind
		count func(trial.Failures) uint64
	}{
		{"nan", trial.ErrNaN, func(f trial.Failures) uint64 { return f.NaN }},
		{"inf", trial.ErrInf, func(f trial.Failures) uint64 { return f.Inf }},
	} {
		t.Run(c.kind, func(t *testing.T) {
			tr, events := start(t, quick(), candidate(t, poisoned(t, c.kind)), r.live())
			r.router.SetTap(tr)
			defer r.router.SetTap(nil)
			for _, s := range r.on(t).drive(events, 3, 10*time.Millisecond) {
				if s.Err != c.want || s.Within || s.MaxAbsDiff != 0 || !strings.Contains(s.Detail, demo.OutputName) {
					t.Errorf("sample %+v, want %s naming output %q", s, c.want, demo.OutputName)
				}
			}
			if st := tr.Stats(); c.count(st.Failures) != st.Samples || st.Passed != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestHangingCandidateNeverBlocksTheTap: while the candidate hangs, the
// tap takes one request and drops every other at once; the hang is
// counted when the run's own deadline abandons it.
func TestHangingCandidateNeverBlocksTheTap(t *testing.T) {
	r := newRig(t)
	hung := inference.NewFaulty(candidate(t, rollout(t, demo.PrimaryV2)))
	if err := hung.Inject(inference.Fault{Kind: inference.FaultHang}); err != nil {
		t.Fatal(err)
	}
	cfg := quick()
	cfg.RunTimeout = 500 * time.Millisecond
	tr, events := start(t, cfg, hung, r.live())
	rec := r.tapped()
	t0 := time.Now()
	for range 1001 {
		tr.Answered(rec)
	}
	took := time.Since(t0)
	st := tr.Stats()
	if took >= cfg.RunTimeout/5 || st.Sampled != 1001 || st.Dropped != 1000 {
		t.Fatalf("1001 taps took %v while the candidate hung (want well under %v); stats %+v", took, cfg.RunTimeout, st)
	}
	if allocs := testing.AllocsPerRun(100, func() { tr.Answered(rec) }); allocs != 0 {
		t.Errorf("the tap allocates %v times per dropped request", allocs)
	}
	select {
	case s := <-events:
		if s.Err != trial.ErrHang || s.Latency < cfg.RunTimeout || !s.OverBudget {
			t.Errorf("sample %+v, want a hang abandoned at %v", s, cfg.RunTimeout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no sample for the hung run")
	}
	if st := tr.Stats(); st.Samples != 1 || st.Failures.Hang != 1 || st.Dropped != 1101 {
		t.Errorf("stats %+v", st)
	}
}

// TestFailingCandidate: a run that returns an error counts as failed,
// with the error in the sample.
func TestFailingCandidate(t *testing.T) {
	r := newRig(t)
	broken := inference.NewFaulty(candidate(t, rollout(t, demo.PrimaryV2)))
	if err := broken.Inject(inference.Fault{Kind: inference.FaultError}); err != nil {
		t.Fatal(err)
	}
	tr, events := start(t, quick(), broken, r.live())
	r.router.SetTap(tr)
	for _, s := range r.drive(events, 3, 10*time.Millisecond) {
		if s.Err != trial.ErrFailed || !strings.Contains(s.Detail, inference.ErrInjected.Error()) {
			t.Errorf("sample %+v, want failed with the injected error", s)
		}
	}
	if st := tr.Stats(); st.Failures.Failed != st.Samples {
		t.Errorf("stats %+v", st)
	}
}

// TestCrashingCandidate: a candidate whose run panics is counted as
// crashed, and the trial goes on with the next request.
func TestCrashingCandidate(t *testing.T) {
	r := newRig(t)
	tr, events := start(t, quick(), &panicky{Runner: candidate(t, rollout(t, demo.PrimaryV2))}, r.live())
	r.router.SetTap(tr)
	samples := r.drive(events, 3, 10*time.Millisecond)
	if s := samples[0]; s.Err != trial.ErrCrashed || !strings.Contains(s.Detail, "injected crash") {
		t.Errorf("first sample %+v, want crashed", s)
	}
	for _, s := range samples[1:] {
		if !s.Passed() {
			t.Errorf("sample after the crash %+v, want passed", s)
		}
	}
	if st := tr.Stats(); st.Failures.Crashed != 1 || st.Passed != st.Samples-1 {
		t.Errorf("stats %+v", st)
	}
}

// TestStopAbandonsARunInFlight: Stop does not wait for a hung run's
// deadline, and that run is no sample.
func TestStopAbandonsARunInFlight(t *testing.T) {
	r := newRig(t)
	hung := inference.NewFaulty(candidate(t, rollout(t, demo.PrimaryV2)))
	if err := hung.Inject(inference.Fault{Kind: inference.FaultHang}); err != nil {
		t.Fatal(err)
	}
	cfg := quick()
	cfg.RunTimeout = time.Minute
	tr, _ := start(t, cfg, hung, r.live())
	tr.Answered(r.tapped())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Stop(ctx); err != nil {
		t.Fatalf("stop with a run hung for a minute: %v", err)
	}
	if st := tr.Stats(); st.Sampled != 1 || st.Samples != 0 {
		t.Errorf("stats %+v", st)
	}
	tr.Answered(r.tapped()) // after Stop: ignored
	if st := tr.Stats(); st.Seen != 1 {
		t.Errorf("the tap took a request after Stop: %+v", st)
	}
}

// TestTapSamplesItsShareOfItsRung: the tap counts the answers of its rung
// only, and samples the configured share of them.
func TestTapSamplesItsShareOfItsRung(t *testing.T) {
	r := newRig(t)
	cfg := quick()
	cfg.SampleRate = 0.1
	tr, _ := start(t, cfg, candidate(t, rollout(t, demo.PrimaryV2)), r.live())
	rec := r.tapped()
	for range 100 {
		tr.Answered(rec)
	}
	rec.ServedBy = watchdog.Shadow
	for range 50 {
		tr.Answered(rec)
	}
	if st := tr.Stats(); st.Seen != 100 || st.Sampled != 10 || st.Dropped > 10 {
		t.Errorf("stats %+v, want 100 seen and 10 sampled", st)
	}
}

// TestRefusals: each bad argument is refused with an error that says
// what, and leaves nothing loaded or running.
func TestRefusals(t *testing.T) {
	r := newRig(t)
	v2 := rollout(t, demo.PrimaryV2)
	if _, err := trial.New(quick(), nil, r.live()); err == nil || !strings.Contains(err.Error(), "no candidate") {
		t.Errorf("no candidate: %v", err)
	}
	if _, err := trial.New(trial.Config{SampleRate: 2}, candidate(t, v2), r.live()); err == nil || !strings.Contains(err.Error(), "sample_rate") {
		t.Errorf("bad config: %v", err)
	}
	sqrt, err := testmodels.Sqrt()
	other := candidate(t, inferencetest.WriteModel(t, "sqrt.onnx", sqrt, err))
	if _, err := trial.New(quick(), other, r.live()); err == nil || !strings.Contains(err.Error(), `input 0 is x float32 [1 4], the live model's is frame float32 [1 3 66 200]`) {
		t.Errorf("another contract: %v", err)
	}
	// Load checks the configuration before it loads anything: the
	// missing file is not even looked at.
	missing := t.TempDir() + "/missing.onnx"
	if _, err := trial.Load(trial.Config{MaxShare: 3}, inference.Config{ModelPath: missing}, r.live()); err == nil || !strings.Contains(err.Error(), "max_share") {
		t.Errorf("load with a bad config: %v", err)
	}
	if _, err := trial.Load(quick(), inference.Config{ModelPath: missing}, r.live()); !errors.Is(err, inference.ErrBadModel) || !strings.Contains(err.Error(), missing) {
		t.Errorf("load of a missing model: %v", err)
	}
	// A candidate Load loaded and New refused is closed again (goleak
	// sees its session's goroutine otherwise).
	if _, err := trial.Load(quick(), inference.Config{ModelPath: other.Info().Model.Path}, r.live()); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("load of another contract: %v", err)
	}
}

// TestLifecycle: Load owns its candidate and Stop closes it; Start
// twice, Start after Stop and Start with an ended context are refused.
func TestLifecycle(t *testing.T) {
	r := newRig(t)
	tr, err := trial.Load(quick(), inference.Config{ModelPath: rollout(t, demo.PrimaryV2), WarmupRuns: 1}, r.live())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Candidate().Model.Version != demo.PrimaryV2Version {
		t.Errorf("candidate %+v", tr.Candidate())
	}
	tr.Answered(r.tapped()) // before Start: ignored
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Start(ended); err == nil {
		t.Error("Start with an ended context")
	}
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("Start twice: %v", err)
	}
	stop(t, tr)
	stop(t, tr) // again: nothing left to do
	if err := tr.Start(context.Background()); !errors.Is(err, trial.ErrStopped) {
		t.Errorf("Start after Stop: %v", err)
	}
	if st := tr.Stats(); st.Seen != 0 {
		t.Errorf("a request before Start was counted: %+v", st)
	}
}
