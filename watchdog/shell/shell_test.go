package shell

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/hw"
	"github.com/vigil-av/vigil/watchdog"
)

type fakeRouter struct {
	mu       sync.Mutex
	plans    []watchdog.Plan
	canaries []watchdog.Backend
}

func (f *fakeRouter) SetPlan(p watchdog.Plan) {
	f.mu.Lock()
	f.plans = append(f.plans, p)
	f.mu.Unlock()
}

func (f *fakeRouter) Canary(b watchdog.Backend, _ time.Duration) bool {
	f.mu.Lock()
	f.canaries = append(f.canaries, b)
	f.mu.Unlock()
	return true
}

func (f *fakeRouter) last() (watchdog.Plan, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.plans[len(f.plans)-1], len(f.canaries)
}

func newShell(t *testing.T, cfg watchdog.Config) (*Shell, *fakeRouter) {
	t.Helper()
	m, err := watchdog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRouter{}
	s := New(Config{Tick: time.Millisecond}, m, r)
	s.Start()
	t.Cleanup(s.Close)
	return s, r
}

// eventually polls cond for up to five seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestShellPublishesPlansAndRunsCanaries(t *testing.T) {
	cfg := watchdog.DefaultConfig()
	cfg.CoolDown = 10 * time.Millisecond
	cfg.CanaryInterval = 5 * time.Millisecond
	s, r := newShell(t, cfg)
	if p, _ := r.last(); p.MRM || p.NumStarts != 3 {
		t.Fatalf("first plan %v", p)
	}
	s.Health(watchdog.HealthSample{GPULost: true})
	eventually(t, "a plan without GPU backends", func() bool {
		p, _ := r.last()
		return p.NumStarts == 1 && p.Starts[0].Backend == watchdog.Degraded
	})
	if st := s.Status(); st.Backends[watchdog.Primary].State != watchdog.Failed || st.LastFailover.IsZero() {
		t.Errorf("status after gpu lost: %+v", st)
	}
	s.Health(watchdog.HealthSample{})
	eventually(t, "canaries for the GPU backends in probation", func() bool {
		_, n := r.last()
		return n > 0
	})
	if !s.Alive(time.Second) {
		t.Error("a running loop is not alive")
	}
}

func TestShellCommands(t *testing.T) {
	s, r := newShell(t, watchdog.DefaultConfig())
	ctx := context.Background()
	if err := s.Command(ctx, watchdog.Command{Op: watchdog.CmdForceOut, Backend: watchdog.Primary}); err != nil {
		t.Fatalf("force-out: %v", err)
	}
	if p, _ := r.last(); p.Prefer[0] != watchdog.Shadow {
		t.Errorf("plan after force-out: %v", p)
	}
	err := s.Command(ctx, watchdog.Command{Op: watchdog.CmdClear, Backend: watchdog.Shadow})
	if !errors.Is(err, ErrRejected) {
		t.Errorf("clear of a healthy backend: %v, want ErrRejected", err)
	}
	if err := s.Command(ctx, watchdog.Command{Op: watchdog.CmdSetPolicy, Policy: watchdog.Cold}); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Policy != watchdog.Cold {
		t.Errorf("policy %s after set-policy cold", st.Policy)
	}
}

func TestShellNeverBlocksReporters(t *testing.T) {
	m, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Queue: 2}, m, &fakeRouter{}) // not started: nothing drains
	for range 5 {
		s.ReportRun(watchdog.RunResult{Backend: watchdog.Primary})
	}
	if got := s.Status().Dropped; got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	// Not started: the heartbeat is the zero time, so the loop is not alive.
	if s.Alive(time.Hour) {
		t.Error("a shell that never started reports alive")
	}
}

func TestShellCloseStopsLoop(t *testing.T) {
	s, _ := newShell(t, watchdog.DefaultConfig())
	s.Close()
	if s.Alive(time.Hour) {
		t.Error("alive after Close")
	}
	err := s.Command(context.Background(), watchdog.Command{Op: watchdog.CmdSetPolicy, Policy: watchdog.Warm})
	if err == nil {
		t.Error("command accepted after Close")
	}
}

// TestHardwareSuspectGPU: a GPU whose probe hangs makes the GPU backends
// suspect, as throttling does; a lost GPU fails them.
func TestHardwareSuspectGPU(t *testing.T) {
	s, _ := newShell(t, watchdog.DefaultConfig())
	s.Hardware(hw.Sample{GPUSuspect: true})
	eventually(t, "the primary suspect", func() bool { return s.Status().Backends[watchdog.Primary].State == watchdog.Suspect })
	s.Hardware(hw.Sample{GPULost: true})
	eventually(t, "the shadow failed", func() bool { return s.Status().Backends[watchdog.Shadow].State == watchdog.Failed })
}

// TestShellRequestFault: a request every rung failed the same way reaches
// the machine as one event; it is counted in the status and blames nobody.
func TestShellRequestFault(t *testing.T) {
	s, _ := newShell(t, watchdog.DefaultConfig())
	var q watchdog.RequestResult
	for b := range watchdog.NumBackends {
		q.Runs[b] = watchdog.RunResult{Backend: watchdog.Backend(b), Latency: time.Millisecond, Invalid: watchdog.InvalidNaN}
	}
	q.NumRuns = watchdog.NumBackends
	for range 3 {
		s.ReportRequest(q)
	}
	eventually(t, "three request faults in the status", func() bool { return s.Status().Counters.RequestFaults == 3 })
	for _, b := range s.Status().Backends {
		if b.State != watchdog.Healthy {
			t.Errorf("%s %s (%s) after request faults", b.Backend, b.State, b.Reason)
		}
	}
}
