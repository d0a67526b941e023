package inference_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/watchdog"
)

// mappedFrame is a demo frame in memory of its own, outside Go's heap, as
// a supervisor's shared buffer is: the test can take every access away
// (mprotect) and change it under a request without the race detector
// seeing it (it does not watch memory outside Go's).
type mappedFrame struct {
	mem    []byte
	pixels []float32
}

func newMappedFrame(t *testing.T) *mappedFrame {
	t.Helper()
	n := 3 * 66 * 200
	mem, err := unix.Mmap(-1, 0, (4*n+4095)&^4095, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	f := &mappedFrame{mem: mem, pixels: unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), n)}
	for i := range f.pixels {
		f.pixels[i] = float32(i%251) / 251
	}
	return f
}

func (f *mappedFrame) protect(t *testing.T, prot int) {
	t.Helper()
	if err := unix.Mprotect(f.mem, prot); err != nil {
		t.Fatal(err)
	}
}

func (f *mappedFrame) tensors() []inference.Tensor {
	return []inference.Tensor{{Name: demo.InputName, Shape: []int64{1, 3, 66, 200}, Data: f.pixels}}
}

// framePointerTap records where the inputs a Tap sees live.
type framePointerTap struct{ at atomic.Uintptr }

func (p *framePointerTap) Answered(a inference.Tapped) {
	p.at.Store(uintptr(unsafe.Pointer(&a.In[0].Data[0])))
}

// TestRouterCopiesTheCallersFrameOnce: the router keeps no copy of a
// request's inputs — what its lanes copy from (and its Tap sees) is the
// caller's memory itself, here a mapping as a supervisor's shared buffer
// is, so each backend gets the frame with one copy, into its session — and
// no lane reads that memory once Infer has returned: the primary, 60ms late
// by a latency fault, is still to copy when the shadow's answer goes out,
// and every access to the frame is taken away (PROT_NONE) as soon as Infer
// returns; a read then would kill the test.
func TestRouterCopiesTheCallersFrameOnce(t *testing.T) {
	t.Run("in-process", func(t *testing.T) { copiesOnce(t, newLadder(t, quickConfig(watchdog.Hot))) })
	// The primary's and the shadow's lanes copy into their workers' shared
	// memory.
	t.Run("workers", func(t *testing.T) { copiesOnce(t, newWorkerLadder(t, 1024, 0)) })
}

func copiesOnce(t *testing.T, l *ladder) {
	l.waitState(watchdog.Primary, watchdog.Healthy, 10*time.Second)
	f := newMappedFrame(t)
	tap := new(framePointerTap)
	l.router.SetTap(tap)
	defer l.router.SetTap(nil)
	if err := l.faults[watchdog.Primary].Inject(inference.Fault{Kind: inference.FaultLatency, Latency: 60 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	in := f.tensors()
	var ans inference.Answer
	served := map[watchdog.Backend]int{}
	for i := range 20 {
		tap.at.Store(0)
		err := l.router.Infer(context.Background(), time.Now().Add(200*time.Millisecond), in, l.out, &ans)
		f.protect(t, unix.PROT_NONE)
		if err != nil || ans.Status != inference.StatusOK {
			t.Fatalf("request %d: %v %+v", i, err, ans)
		}
		served[ans.ServedBy]++
		if got, want := tap.at.Load(), uintptr(unsafe.Pointer(&f.pixels[0])); got != want {
			t.Fatalf("request %d: the tap saw the inputs at %#x, the caller's frame is at %#x: the router copied it", i, got, want)
		}
		time.Sleep(60 * time.Millisecond) // the primary's lane wakes up meanwhile
		f.protect(t, unix.PROT_READ|unix.PROT_WRITE)
	}
	// Most answers went out before the primary's lane copied: those are
	// the lanes that must not read the frame afterwards.
	if served[watchdog.Primary] > 10 {
		t.Errorf("served %v: the 60ms primary should have missed most of the shadow's answers", served)
	}
}

// runRecorder keeps every request's runs.
type runRecorder struct {
	mu   sync.Mutex
	runs []watchdog.RunResult
}

func (r *runRecorder) ReportRun(x watchdog.RunResult) {
	r.mu.Lock()
	r.runs = append(r.runs, x)
	r.mu.Unlock()
}

func (r *runRecorder) ReportRequest(x watchdog.RequestResult) {
	r.mu.Lock()
	r.runs = append(r.runs, x.Runs[:x.NumRuns]...)
	r.mu.Unlock()
}
func (r *runRecorder) ReportComparison(watchdog.Comparison) {}
func (r *runRecorder) ReportVote(watchdog.Vote)             {}

// TestFrameChangedInFlightIsChecked: a supervisor that breaks the rule and
// writes NaN into its frame while the request is in flight — after the
// shadow copied it, before the primary did — gets INVALID_INPUT: the
// values are checked on the copy a backend would run, so the primary never
// runs on them and nothing is held against it; the shadow ran on a good
// copy and its run counts as one.
func TestFrameChangedInFlightIsChecked(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	var runners [watchdog.NumBackends]inference.Runner
	var faults [watchdog.NumBackends]*inference.Faulty
	for b, role := range []string{demo.RolePrimary, demo.RoleShadow, demo.RoleDegraded} {
		faults[b] = inference.NewFaulty(load(t, inference.Config{Name: role, ModelPath: paths[role]}))
		runners[b] = faults[b]
	}
	rep := new(runRecorder)
	// The router waits for the primary, which it prefers, up to 5s.
	router, err := inference.NewRouter(inference.RouterConfig{PreferWait: 5 * time.Second}, runners, rep)
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close(context.Background())
	m, err := watchdog.New(quickConfig(watchdog.Hot))
	if err != nil {
		t.Fatal(err)
	}
	router.SetPlan(m.Plan())
	if err := faults[watchdog.Primary].Inject(inference.Fault{Kind: inference.FaultStuck}); err != nil {
		t.Fatal(err)
	}
	f := newMappedFrame(t)
	out := faults[watchdog.Degraded].Unwrap().(*inference.Backend).NewOutputs()
	var ans inference.Answer
	done := make(chan error, 1)
	go func() {
		done <- router.Infer(context.Background(), time.Now().Add(10*time.Second), f.tensors(), out, &ans)
	}()
	// The shadow has copied and answered; the primary is held before its copy.
	shadow := faults[watchdog.Shadow].Unwrap().(*inference.Backend)
	for start := time.Now(); time.Since(start) < 50*time.Millisecond || shadow.InFlight() > 0; time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the shadow's run did not end in 10s")
		}
	}
	if st := router.Stats(); st.Requests > 0 {
		t.Fatalf("answered before the primary ran: %+v", st)
	}
	f.pixels[1234] = float32(math.NaN())
	faults[watchdog.Primary].Clear()
	err = <-done
	var ie *inference.InputError
	if !errors.As(err, &ie) || ie.Reason != inference.InvalidNaN || ie.Index != 1234 {
		t.Fatalf("Infer: %v, want the NaN at 1234 refused", err)
	}
	if st := router.Stats(); st.InvalidInputs != 1 {
		t.Errorf("stats %+v: want one invalid input", st)
	}
	router.Close(context.Background()) // every lane is over: the request is reported
	rep.mu.Lock()
	defer rep.mu.Unlock()
	for _, r := range rep.runs {
		if r.Backend == watchdog.Primary {
			t.Errorf("the primary's run was reported: %+v", r)
		}
		if r.Backend == watchdog.Shadow && (r.Err != watchdog.RunOK || r.Invalid != watchdog.Valid) {
			t.Errorf("the shadow's run on the good copy: %+v", r)
		}
	}
}
