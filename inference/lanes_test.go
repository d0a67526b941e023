package inference_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/testmodels"
	"github.com/vigil-av/vigil/watchdog"
)

// oneRungRouter puts runner behind a router as its only rung (the
// degraded one, which the router's first plan starts alone), reporting to
// a recordingReporter, and closes the router when the test ends.
func oneRungRouter(t *testing.T, runner inference.Runner) (*inference.Router, *recordingReporter) {
	t.Helper()
	var runners [watchdog.NumBackends]inference.Runner
	runners[watchdog.Degraded] = runner
	rep := &recordingReporter{}
	r, err := inference.NewRouter(inference.RouterConfig{}, runners, rep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("router close: %v", err)
		}
	})
	return r, rep
}

// goroutinesIn returns the stacks of the goroutines that have a frame
// containing fn.
func goroutinesIn(fn string) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			found = append(found, g)
		}
	}
	return found
}

// TestLaneMakesTheNativeCall: on the router's path a request makes one
// hand-off, to a lane: the lane's goroutine is the one in ONNX Runtime,
// the session's own goroutine (which Backend.Run hands its call to) is
// not, and the caller waits for the lane in the router. Behind a fault
// injector with no fault set, the same holds.
func TestLaneMakesTheNativeCall(t *testing.T) {
	data, err := testmodels.Slow(4000, 512)
	b := load(t, inference.Config{ModelPath: inferencetest.WriteModel(t, "slow.onnx", data, err), WarmupRuns: 1})
	for _, tc := range []struct {
		name   string
		runner inference.Runner
	}{{"backend", b}, {"faulty", inference.NewFaulty(b)}} {
		t.Run(tc.name, func(t *testing.T) {
			router, _ := oneRungRouter(t, tc.runner)
			in, out := b.NewInputs(), b.NewOutputs()
			done := make(chan inference.Answer, 1)
			go func() {
				var ans inference.Answer
				if err := router.Infer(context.Background(), far(), in, out, &ans); err != nil {
					t.Error(err)
				}
				done <- ans
			}()
			var native, callers []string
			for end := time.Now().Add(10 * time.Second); len(native) == 0; {
				if len(done) > 0 || time.Now().After(end) {
					t.Fatal("no goroutine was seen in ONNX Runtime while the request ran")
				}
				if b.InFlight() > 0 {
					native = goroutinesIn("onnxruntime_go.(*AdvancedSession).RunWithOptions")
					callers = goroutinesIn("inference.(*Router).follow")
				}
				time.Sleep(100 * time.Microsecond)
			}
			if len(native) != 1 {
				t.Fatalf("%d goroutines in ONNX Runtime, want 1:\n%s", len(native), strings.Join(native, "\n\n"))
			}
			if !strings.Contains(native[0], "inference.(*lane).loop") || strings.Contains(native[0], "(*slot).work") {
				t.Errorf("the native call is not made on the router's lane:\n%s", native[0])
			}
			if len(callers) != 1 || !strings.Contains(callers[0], "[select") {
				t.Errorf("the caller is not waiting in the router:\n%s", strings.Join(callers, "\n\n"))
			}
			if ans := <-done; ans.Status != inference.StatusOK || ans.ServedBy != watchdog.Degraded {
				t.Errorf("answer %+v, want OK from the one rung", ans)
			}
		})
	}
}

// TestRouterAnswersWhileNativeCallHangs: a single huge node, which
// Terminate cannot interrupt (busyModel's), stands for a hung GPU kernel
// on the router's path, with the backend bare and behind a fault injector
// with no fault set (as vigild runs it when drills are allowed). The
// caller still has its answer at the deadline; the run is abandoned
// (Backend.Abandoned) and the watchdog hears of the deadline miss while
// the native call goes on. The lane is not lost to the stuck call: a
// request in the meantime takes a lane, waits for the session and misses
// its deadline too (the watchdog hears that as well; the backend is not
// reported busy). Once the native call has returned the rung serves
// again; and a Close while it is still stuck does not wait for it. Every
// lane ends, the one that waited for the native call included (goleak in
// TestMain).
func TestRouterAnswersWhileNativeCallHangs(t *testing.T) {
	b := load(t, inference.Config{ModelPath: busyModel(t, "busy.onnx", 1), WarmupRuns: 1})
	in, out := b.NewInputs(), b.NewOutputs()
	fill(in[0].Data, giantX)
	t0 := time.Now()
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatal(err)
	}
	full := time.Since(t0)

	t.Run("backend serves again", func(t *testing.T) {
		router, rep := oneRungRouter(t, b)
		if !hangAndMiss(t, router, rep, b, full) {
			return
		}
		waitIdle(t, b, time.Minute)
		var ans inference.Answer
		if err := router.Infer(context.Background(), far(), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
			t.Errorf("after the native call returned: %v %+v, want OK", err, ans)
		}
	})
	t.Run("faulty closes", func(t *testing.T) {
		router, rep := oneRungRouter(t, inference.NewFaulty(b))
		if !hangAndMiss(t, router, rep, b, full) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), full/2)
		defer cancel()
		if err := router.Close(ctx); err != nil {
			t.Errorf("Close while a native call is stuck: %v", err)
		}
		if b.InFlight() == 0 {
			t.Errorf("Close returned once the native call (about %v) had: it waited for the stuck lane", full)
		}
		waitIdle(t, b, time.Minute)
	})
}

// hangAndMiss sends router (whose one rung runs busyModel on b, a run of
// about full; it reports to rep) a request with a short deadline, then another while the
// first one's native call is still going, and checks both as
// TestRouterAnswersWhileNativeCallHangs says. It reports false when the
// machine ran the model too fast to check anything.
func hangAndMiss(t *testing.T, router *inference.Router, rep *recordingReporter, b *inference.Backend, full time.Duration) bool {
	t.Helper()
	in, out := b.NewInputs(), b.NewOutputs()
	fill(in[0].Data, giantX)
	abandoned := b.Abandoned()
	const budget = 60 * time.Millisecond
	var ans inference.Answer
	t0 := time.Now()
	if err := router.Infer(context.Background(), t0.Add(budget), in, out, &ans); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	if !missed(ans) {
		t.Fatalf("answer %+v, want NO_RESULT at the deadline", ans)
	}
	if took >= full/2 {
		t.Fatalf("Infer returned after %v; the native call takes %v, so the router waited for it", took, full)
	}
	if b.InFlight() != 1 {
		t.Skipf("the native call (%v) ended before the checks (InFlight %d): machine too fast for this model", full, b.InFlight())
	}
	rep.waitCounts(t, 0, 1)
	if b.Abandoned() != abandoned+1 {
		t.Errorf("Abandoned() = %d after the deadline, want %d", b.Abandoned(), abandoned+1)
	}
	checkMiss(t, rep, 0)
	t.Logf("native call %v, deadline %v, answered after %v", full, budget, took)

	// The session is still held by the stuck call.
	if err := router.Infer(context.Background(), time.Now().Add(budget), in, out, &ans); err != nil {
		t.Fatal(err)
	}
	if b.InFlight() != 1 {
		t.Logf("the native call ended before the second request's checks; skipped")
		return true
	}
	if !missed(ans) {
		t.Errorf("request while the session is stuck: %+v, want NO_RESULT at the deadline", ans)
	}
	if st := router.Stats(); st.Busy != 0 {
		t.Errorf("the backend was busy %d times: the stuck call kept its lane", st.Busy)
	}
	rep.waitCounts(t, 0, 2)
	checkMiss(t, rep, 1)
	if b.Abandoned() != abandoned+1 {
		t.Errorf("Abandoned() = %d, want %d: the second request never had the session", b.Abandoned(), abandoned+1)
	}
	return true
}

// missed reports whether ans is NO_RESULT for the deadline: the router's
// wait and the rung's deadline end together, so either may come first
// (ReasonDeadline, or ReasonAllFailed with the rung's deadline outcome).
func missed(ans inference.Answer) bool {
	if ans.Status != inference.StatusNoResult {
		return false
	}
	return ans.Reason == inference.ReasonDeadline ||
		ans.Reason == inference.ReasonAllFailed && ans.Backends[watchdog.Degraded].Outcome == inference.OutcomeDeadline
}

// checkMiss checks that request i came to the reporter as one deadline
// miss of the degraded rung.
func checkMiss(t *testing.T, rep *recordingReporter, i int) {
	t.Helper()
	rep.mu.Lock()
	rr := rep.requests[i]
	rep.mu.Unlock()
	if rr.NumRuns != 1 || rr.Runs[0].Backend != watchdog.Degraded || rr.Runs[0].Err != watchdog.RunDeadline {
		t.Errorf("request %d reported as %+v, want one deadline miss of the degraded rung", i, rr)
	}
}
