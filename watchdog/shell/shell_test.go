package shell

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/watchdog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

const tick = time.Millisecond

// rig is a started shell on a fake clock.
type rig struct {
	*Shell
	r   *fakeRouter
	clk *clock.Fake
}

func newShell(t *testing.T, cfg watchdog.Config) rig {
	t.Helper()
	m, err := watchdog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRouter{}
	clk := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	s := New(Config{Tick: tick, Clock: clk}, m, r)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return rig{s, r, clk}
}

// ticksUntil advances the clock a tick at a time until cond holds, for at
// most max ticks. Advance returns once the loop has taken the tick, that
// is once it has finished every step it began before: what cond saw is
// complete after one more tick, which ticksUntil gives it.
func (g rig) ticksUntil(t *testing.T, what string, max int, cond func() bool) {
	t.Helper()
	for range max {
		if cond() {
			g.clk.Advance(tick)
			return
		}
		g.clk.Advance(tick)
	}
	t.Fatalf("no %s after %d ticks (%v)", what, max, time.Duration(max)*tick)
}

func TestShellPublishesPlansAndRunsCanaries(t *testing.T) {
	cfg := watchdog.DefaultConfig()
	cfg.CoolDown = 10 * time.Millisecond
	cfg.CanaryInterval = 5 * time.Millisecond
	g := newShell(t, cfg)
	if p, _ := g.r.last(); p.MRM || p.NumStarts != 3 {
		t.Fatalf("first plan %v", p)
	}
	g.Health(watchdog.HealthSample{GPULost: true})
	g.ticksUntil(t, "plan without GPU backends", 100, func() bool {
		p, _ := g.r.last()
		return p.NumStarts == 1 && p.Starts[0].Backend == watchdog.Degraded
	})
	if st := g.Status(); st.Backends[watchdog.Primary].State != watchdog.Failed || st.LastFailover.IsZero() {
		t.Errorf("status after gpu lost: %+v", st)
	}
	g.Health(watchdog.HealthSample{})
	// Probation starts after the cool-down, the first canary one canary
	// interval later: well within 100 ticks of fake time.
	g.ticksUntil(t, "canaries for the GPU backends in probation", 100, func() bool {
		_, n := g.r.last()
		return n > 0
	})
	if !g.Alive(tick) {
		t.Error("a running loop is not alive")
	}
}

func TestShellCommands(t *testing.T) {
	g := newShell(t, watchdog.DefaultConfig())
	ctx := context.Background()
	if err := g.Command(ctx, watchdog.Command{Op: watchdog.CmdForceOut, Backend: watchdog.Primary}); err != nil {
		t.Fatalf("force-out: %v", err)
	}
	if p, _ := g.r.last(); p.Prefer[0] != watchdog.Shadow {
		t.Errorf("plan after force-out: %v", p)
	}
	err := g.Command(ctx, watchdog.Command{Op: watchdog.CmdClear, Backend: watchdog.Shadow})
	if !errors.Is(err, ErrRejected) {
		t.Errorf("clear of a healthy backend: %v, want ErrRejected", err)
	}
	if err := g.Command(ctx, watchdog.Command{Op: watchdog.CmdSetPolicy, Policy: watchdog.Cold}); err != nil {
		t.Fatal(err)
	}
	if st := g.Status(); st.Policy != watchdog.Cold {
		t.Errorf("policy %s after set-policy cold", st.Policy)
	}
}

func TestShellNeverBlocksReporters(t *testing.T) {
	m, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Queue: 2, Clock: clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))}, m, &fakeRouter{}) // not started: nothing drains
	for range 5 {
		s.ReportRun(watchdog.RunResult{Backend: watchdog.Primary})
	}
	if got := s.Status().Dropped; got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	// Not started: the loop has never stepped, so it is not alive.
	if s.Alive(time.Hour) {
		t.Error("a shell that never started reports alive")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("close of a shell that never started: %v", err)
	}
}

func TestShellLifecycle(t *testing.T) {
	g := newShell(t, watchdog.DefaultConfig())
	ctx := context.Background()
	if err := g.Start(ctx); err == nil {
		t.Error("started twice")
	}
	if n := g.clk.Tickers(); n != 1 {
		t.Errorf("%d tickers while running, want 1", n)
	}
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
	if n := g.clk.Tickers(); n != 0 {
		t.Errorf("%d tickers after Close: the loop did not stop its ticker", n)
	}
	if g.Alive(time.Hour) {
		t.Error("alive after Close")
	}
	if err := g.Command(ctx, watchdog.Command{Op: watchdog.CmdSetPolicy, Policy: watchdog.Warm}); err == nil {
		t.Error("command accepted after Close")
	}
	if err := g.Start(ctx); err == nil {
		t.Error("started after Close")
	}

	m, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := New(Config{}, m, &fakeRouter{}).Start(done); !errors.Is(err, context.Canceled) {
		t.Errorf("start with an ended context: %v", err)
	}
}

// TestShellCloseGivesUpWithCtx: a loop stuck in the router (a canary that
// does not return) makes Close report it when ctx ends, not hang.
func TestShellCloseGivesUpWithCtx(t *testing.T) {
	m, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	stuck := &stuckRouter{in: make(chan struct{}), release: release}
	s := New(Config{Clock: clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))}, m, stuck)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Health(watchdog.HealthSample{GPULost: true}) // a new plan: SetPlan blocks
	<-stuck.in
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("close with a stuck loop: %v, want context.Canceled", err)
	}
	close(release)
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("close once released: %v", err)
	}
}

// stuckRouter blocks the second SetPlan (the first is Start's) until
// released.
type stuckRouter struct {
	fakeRouter
	n       int
	in      chan struct{}
	release chan struct{}
}

func (r *stuckRouter) SetPlan(p watchdog.Plan) {
	r.n++
	if r.n == 2 {
		close(r.in)
		<-r.release
	}
}

// TestHealthThrottledThenLost: a throttled GPU (as the daemon reports one
// whose probe hangs, see agent.HealthSample) makes the GPU backends
// suspect; a lost GPU fails them.
func TestHealthThrottledThenLost(t *testing.T) {
	g := newShell(t, watchdog.DefaultConfig())
	g.Health(watchdog.HealthSample{Throttled: true})
	g.ticksUntil(t, "suspect primary", 100, func() bool { return g.Status().Backends[watchdog.Primary].State == watchdog.Suspect })
	g.Health(watchdog.HealthSample{GPULost: true})
	g.ticksUntil(t, "failed shadow", 100, func() bool { return g.Status().Backends[watchdog.Shadow].State == watchdog.Failed })
}

// TestShellRequestFault: a request every rung failed the same way reaches
// the machine as one event; it is counted in the status and blames nobody.
func TestShellRequestFault(t *testing.T) {
	g := newShell(t, watchdog.DefaultConfig())
	var q watchdog.RequestResult
	for b := range watchdog.NumBackends {
		q.Runs[b] = watchdog.RunResult{Backend: watchdog.Backend(b), Latency: time.Millisecond, Invalid: watchdog.InvalidNaN}
	}
	q.NumRuns = watchdog.NumBackends
	for range 3 {
		g.ReportRequest(q)
	}
	g.ticksUntil(t, "three request faults in the status", 100, func() bool { return g.Status().Counters.RequestFaults == 3 })
	for _, b := range g.Status().Backends {
		if b.State != watchdog.Healthy {
			t.Errorf("%s %s (%s) after request faults", b.Backend, b.State, b.Reason)
		}
	}
}
