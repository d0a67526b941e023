package inference_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/watchdog"
)

// TestKillGraceFromThePlan: the router passes each backend in a worker the
// kill grace of the watchdog's plan (MissThreshold × Deadline here), and a
// backend whose configuration sets worker.kill_grace keeps its own.
func TestKillGraceFromThePlan(t *testing.T) {
	cfg := quickConfig(watchdog.Hot)
	cfg.MissThreshold = 10
	l := newLadderOf(t, cfg, func(b watchdog.Backend, role, path string) inference.Config {
		if b == watchdog.Degraded {
			return inference.Config{Name: role, ModelPath: path}
		}
		c := workerCfg(role, path)
		c.Worker.KillGrace = 0 // the primary: the watchdog's
		if b == watchdog.Shadow {
			c.Worker.KillGrace = 150 * time.Millisecond
		}
		return c
	})
	want := 10 * cfg.Deadline
	if p := l.router.Plan(); p.KillGrace[watchdog.Primary] != want {
		t.Fatalf("plan %v: kill grace %v, want %v", p, p.KillGrace, want)
	}
	for b, w := range map[watchdog.Backend]struct {
		d    time.Duration
		from string
	}{watchdog.Primary: {want, "the watchdog's kill grace"}, watchdog.Shadow: {150 * time.Millisecond, "worker.kill_grace"}} {
		be := l.faults[b].Unwrap().(*inference.Backend)
		if d, from := be.KillGrace(); d != w.d || from != w.from {
			t.Errorf("%s: kill grace %v (%s), want %v (%s)", b, d, from, w.d, w.from)
		}
	}
	if d, from := l.faults[watchdog.Degraded].Unwrap().(*inference.Backend).KillGrace(); d != 0 || from != "" {
		t.Errorf("degraded (in-process): kill grace %v (%s), want none", d, from)
	}
}

// TestWedgedWorkerKilledAtTheWatchdogsGrace: a worker wedged on a run is
// killed at the run's deadline plus the grace the watchdog set (400ms
// here), not the default 100ms, and its end says which grace it was.
func TestWedgedWorkerKilledAtTheWatchdogsGrace(t *testing.T) {
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	cfg := workerCfg("primary", paths["primary"])
	cfg.Worker.KillGrace = 0
	b := load(t, cfg)
	if d, from := b.KillGrace(); d != 100*time.Millisecond || from != "the default kill grace" {
		t.Errorf("before the watchdog set one: %v (%s)", d, from)
	}
	const grace = 400 * time.Millisecond
	b.SetKillGrace(grace)
	before, _ := b.WorkerStats()
	if err := inference.NewFaulty(b).Inject(inference.Fault{Kind: inference.FaultWedge}); err != nil {
		t.Fatal(err)
	}
	in, out := b.NewInputs(), b.NewOutputs()
	deadline := time.Now().Add(50 * time.Millisecond)
	if _, err := b.Run(t.Context(), deadline, in, out); err == nil {
		t.Fatal("a wedged run answered")
	}
	var killedBy time.Time
	for end := deadline.Add(30 * time.Second); killedBy.IsZero(); time.Sleep(time.Millisecond) {
		now := time.Now()
		if st, _ := b.WorkerStats(); st.Kills > before.Kills {
			killedBy = now
		} else if now.After(end) {
			t.Fatalf("not killed 30s after the deadline: %+v", st)
		}
	}
	if late := killedBy.Sub(deadline); late < grace {
		t.Errorf("killed %v after the deadline, before the watchdog's grace %v", late, grace)
	}
	waitRestart(t, b, before.Restarts)
	st, _ := b.WorkerStats()
	if want := "a run was still busy 400ms after its deadline (the watchdog's kill grace)"; !strings.Contains(st.LastEnd, want) {
		t.Errorf("last end %q, want %q", st.LastEnd, want)
	}
}
