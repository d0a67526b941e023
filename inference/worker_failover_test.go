package inference_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/watchdog"
)

// newWorkerLadder is a ladder whose primary and shadow run in worker
// processes; the degraded rung stays in-process.
func newWorkerLadder(t *testing.T, limitMB int, grace time.Duration) *ladder {
	return newLadderOf(t, quickConfig(watchdog.Hot), func(b watchdog.Backend, role, path string) inference.Config {
		if b == watchdog.Degraded {
			return inference.Config{Name: role, ModelPath: path}
		}
		cfg := workerCfg(role, path)
		cfg.Worker.MemoryLimitMB = limitMB
		cfg.Worker.Heartbeat = 20 * time.Millisecond
		cfg.Worker.KillGrace = grace
		return cfg
	})
}

func (l *ladder) workerStats(b watchdog.Backend) inference.WorkerStats {
	st, ok := inference.WorkerStatsOf(l.router.Backend(b))
	if !ok {
		l.t.Fatalf("%s has no worker", b)
	}
	return st
}

// sawPath reports whether b's transitions, from index from on, went
// through failed, probation and healthy in that order.
func (l *ladder) sawPath(b watchdog.Backend, from int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	want := []watchdog.State{watchdog.Failed, watchdog.Probation, watchdog.Healthy}
	for _, tr := range l.transitions[from:] {
		if tr.Backend == b && len(want) > 0 && tr.To == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

// TestWorkerFaultsFailOverAndRecover: with primary and shadow in worker
// processes, a wedged (for good), crashed or leaking primary worker costs
// no answer in the hot policy: the shadow serves by the deadline, the
// worker is killed (or reaped) and replaced, and the primary comes back
// through failed → probation → healthy.
func TestWorkerFaultsFailOverAndRecover(t *testing.T) {
	for _, c := range []struct {
		fault inference.FaultKind
		count func(inference.WorkerStats) int64
		why   string // in LastEnd
		// grace is long for the leak: a run that touches its leak on a
		// loaded machine must not be killed as wedged first.
		grace time.Duration
	}{
		{inference.FaultWedge, func(s inference.WorkerStats) int64 { return s.Kills }, "still busy", 300 * time.Millisecond},
		{inference.FaultCrash, func(s inference.WorkerStats) int64 { return s.Crashes }, "SIGABRT", 300 * time.Millisecond},
		{inference.FaultLeak, func(s inference.WorkerStats) int64 { return s.Kills + s.Crashes }, "memory", 2 * time.Second},
	} {
		t.Run(string(c.fault), func(t *testing.T) {
			l := newWorkerLadder(t, 256, c.grace)
			l.waitState(watchdog.Primary, watchdog.Healthy, 10*time.Second)
			before := l.workerStats(watchdog.Primary)
			l.mu.Lock()
			mark := len(l.transitions)
			l.mu.Unlock()
			if err := l.faults[watchdog.Primary].Inject(inference.Fault{Kind: c.fault}); err != nil {
				t.Fatal(err)
			}
			total := tally{reasons: map[inference.Reason]int{}}
			end := time.Now().Add(60 * time.Second)
			for l.workerStats(watchdog.Primary).Restarts == before.Restarts || !l.sawPath(watchdog.Primary, mark) {
				if time.Now().After(end) {
					st := l.shell.Status()
					t.Fatalf("after 60s: worker %+v, primary %s (%s)", l.workerStats(watchdog.Primary), st.Backends[watchdog.Primary].State, st.Backends[watchdog.Primary].Reason)
				}
				total.add(l.drive(5, 5*time.Millisecond))
			}
			after := l.workerStats(watchdog.Primary)
			if c.count(after) <= c.count(before) || !strings.Contains(after.LastEnd, c.why) || after.Pid == before.Pid || after.LastRestart <= 0 {
				t.Errorf("worker before %+v, after %+v: want the worker ended (%s) and replaced", before, after, c.fault)
			}
			t.Logf("%s: %d frames, served %v, no result %d %v; worker %+v", c.fault, total.frames, total.served, total.noResult, total.reasons, after)
			if !total.cleanish() {
				t.Errorf("answers lost to more than machine load: %d of %d NO_RESULT (%v)", total.noResult, total.frames, total.reasons)
			}
			if !mostly(total.served[watchdog.Primary]+total.served[watchdog.Shadow], total.frames) {
				t.Errorf("served %v of %d frames: want the GPU rungs to serve", total.served, total.frames)
			}
		})
	}
}

// TestWorkerFaultNeedsAWorker: the worker faults are refused on an
// in-process backend, naming what is missing.
func TestWorkerFaultNeedsAWorker(t *testing.T) {
	l := newLadder(t, quickConfig(watchdog.Hot))
	err := l.faults[watchdog.Degraded].Inject(inference.Fault{Kind: inference.FaultCrash})
	if err == nil || !strings.Contains(err.Error(), "isolation: process") {
		t.Fatalf("crash on an in-process backend: %v", err)
	}
}

// TestWorkerKillCyclesLeakNothing: 100 kills and replacements of a
// worker leave the daemon with the descriptors, memfd mappings and child
// processes it had.
func TestWorkerKillCyclesLeakNothing(t *testing.T) {
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	cfg := workerCfg("primary", paths["primary"])
	cfg.Worker.RestartMax = 20 * time.Millisecond
	b := load(t, cfg)
	fds0, maps0, kids0 := fdCount(t), memfdMaps(t), children(t)
	in, out := b.NewInputs(), b.NewOutputs()
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	for i := range cycles {
		st, _ := b.WorkerStats()
		if err := inference.NewFaulty(b).Inject(inference.Fault{Kind: inference.FaultCrash}); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		b.Run(t.Context(), time.Now().Add(time.Second), in, out) // dies under it
		waitRestart(t, b, st.Restarts)
		if _, err := b.Run(t.Context(), time.Now().Add(10*time.Second), in, out); err != nil {
			t.Fatalf("cycle %d: the new worker: %v", i, err)
		}
	}
	st, _ := b.WorkerStats()
	t.Logf("after %d cycles: %+v", cycles, st)
	if fds, maps, kids := fdCount(t), memfdMaps(t), children(t); fds != fds0 || maps != maps0 || kids != kids0 {
		t.Errorf("descriptors %d → %d, memfd mappings %d → %d, children %d → %d", fds0, fds, maps0, maps, kids0, kids)
	}
}

func waitRestart(t *testing.T, b *inference.Backend, restarts int64) {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for {
		st, _ := b.WorkerStats()
		if st.Restarts > restarts && st.Pid != 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("no restart after 30s: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func fdCount(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func memfdMaps(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "/memfd:")
}

// children counts the processes whose parent is this one.
func children(t *testing.T) int {
	ds, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range ds {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		var state byte
		var ppid int
		if _, err := fmt.Sscanf(s[i+2:], "%c %d", &state, &ppid); err == nil && ppid == os.Getpid() {
			n++
		}
	}
	return n
}

// TestWorkerThatKeepsDying: a worker that dies before answering any run,
// again and again, is restarted with a growing backoff, and the backend's
// runs fail meanwhile with ErrWorkerDown and a reason that says so.
func TestWorkerThatKeepsDying(t *testing.T) {
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	cfg := workerCfg("primary", paths["primary"])
	cfg.Worker.RestartMin, cfg.Worker.RestartMax = 100*time.Millisecond, 400*time.Millisecond
	b := load(t, cfg)
	in, out := b.NewInputs(), b.NewOutputs()
	var down string
	for i := range 3 {
		st, _ := b.WorkerStats()
		if err := inference.NewFaulty(b).Inject(inference.Fault{Kind: inference.FaultCrash}); err != nil {
			t.Fatalf("crash %d: %v", i, err)
		}
		_, err := b.Run(t.Context(), time.Now().Add(time.Second), in, out)
		if !errors.Is(err, inference.ErrWorkerDown) {
			t.Fatalf("crash %d: the run: %v, want ErrWorkerDown", i, err)
		}
		// Until the next worker is warm, runs fail at once, saying why.
		for end := time.Now().Add(5 * time.Second); i == 2 && time.Now().Before(end); {
			_, err = b.Run(t.Context(), time.Now().Add(time.Second), in, out)
			if err == nil || strings.Contains(err.Error(), "restarting") {
				down = fmt.Sprint(err)
				break
			}
			time.Sleep(time.Millisecond)
		}
		waitRestart(t, b, st.Restarts)
	}
	if !strings.Contains(down, "3 workers in a row ended before answering a run") || !strings.Contains(down, "SIGABRT") {
		t.Errorf("the third time down, runs said %q", down)
	}
	st, _ := b.WorkerStats()
	if st.Crashes != 3 || st.Restarts != 3 {
		t.Errorf("stats %+v: want 3 crashes and 3 restarts", st)
	}
	if _, err := b.Run(t.Context(), time.Now().Add(10*time.Second), in, out); err != nil {
		t.Errorf("the fourth worker: %v", err)
	}
}

// TestWorkerHeartbeatLoss: a worker that stops answering (stopped with
// SIGSTOP: it neither runs nor dies) is killed after the heartbeat
// timeout and replaced.
func TestWorkerHeartbeatLoss(t *testing.T) {
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	cfg := workerCfg("primary", paths["primary"])
	cfg.Worker.Heartbeat, cfg.Worker.HeartbeatTimeout = 20*time.Millisecond, 300*time.Millisecond
	b := load(t, cfg)
	st, _ := b.WorkerStats()
	if err := syscall.Kill(st.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitRestart(t, b, st.Restarts)
	after, _ := b.WorkerStats()
	if after.Kills != 1 || !strings.Contains(after.LastEnd, "no heartbeat") {
		t.Errorf("stats %+v: want one kill for the lost heartbeat", after)
	}
	in, out := b.NewInputs(), b.NewOutputs()
	if _, err := b.Run(t.Context(), time.Now().Add(10*time.Second), in, out); err != nil {
		t.Errorf("the new worker: %v", err)
	}
}
