package trial_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/trial"
	"github.com/vigil-av/vigil/models/demo"
)

// TestSteadyLoadWithSlowCandidate is the trial's promise: at 30 Hz
// through the real router, with primary-slow trialled on every answer of
// the primary, the served path misses no deadline and answers every
// request; the candidate runs within its cost cap, and what it could not
// take is counted as dropped.
func TestSteadyLoadWithSlowCandidate(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	var samples []trial.Sample
	cfg := trial.Config{SampleRate: 1, OnSample: func(s trial.Sample) {
		mu.Lock()
		samples = append(samples, s)
		mu.Unlock()
	}}
	tr, err := trial.Load(cfg, inference.Config{Name: "candidate", ModelPath: rollout(t, demo.PrimarySlow)}, r.live())
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.router.SetTap(tr)
	const frames = 90
	period := time.Second / 30
	t0 := time.Now()
	next := t0
	for range frames {
		r.infer()
		next = next.Add(period)
		time.Sleep(time.Until(next))
	}
	elapsed := time.Since(t0)
	r.router.SetTap(nil)
	stop(t, tr)

	rs := r.router.Stats()
	t.Logf("served path: %d answers, %d late, %d NO_RESULT; router stats: late %d, no_result %v, p99 %v, max %v",
		r.answers, r.late, r.noResult, rs.Late, rs.NoResult, rs.P99, rs.Max)
	if r.late != 0 || r.noResult != 0 || rs.Late != 0 || len(rs.NoResult) != 0 || rs.Requests != frames {
		t.Errorf("the served path missed deadlines or answered NO_RESULT while the candidate ran")
	}

	st := tr.Stats()
	mu.Lock()
	defer mu.Unlock()
	var busy time.Duration
	for _, s := range samples {
		busy += s.Latency
		if !s.OverBudget || s.Passed() {
			t.Errorf("sample %+v, want over the %v budget", s, budget)
		}
	}
	t.Logf("trial: %+v; the candidate ran %v of %v", st, busy, elapsed)
	if st.Samples < 3 || int(st.Samples) != len(samples) || st.Failures.OverBudget != st.Samples {
		t.Errorf("samples: %d (%d events), %d over budget", st.Samples, len(samples), st.Failures.OverBudget)
	}
	if st.Seen < frames*9/10 || st.Sampled != st.Seen || st.Dropped == 0 ||
		st.Samples+st.Dropped > st.Sampled || st.Sampled > st.Samples+st.Dropped+1 {
		t.Errorf("hand-off: seen %d, sampled %d, dropped %d, run %d", st.Seen, st.Sampled, st.Dropped, st.Samples)
	}
	// The default cost cap: at most 5 runs a second and a quarter of the
	// wall time (each run waits its own time three times over after it).
	if maxRuns := uint64(elapsed.Seconds()*5) + 1; st.Samples > maxRuns {
		t.Errorf("%d candidate runs in %v, want at most %d", st.Samples, elapsed, maxRuns)
	}
	if share := busy.Seconds() / elapsed.Seconds(); share > 0.25+0.05 {
		t.Errorf("the candidate ran %.2f of the time, want at most 0.25", share)
	}
}
