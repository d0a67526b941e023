// Package shell runs a watchdog.Machine: it owns the ticker (from the
// clock it is given) and the one goroutine that feeds the machine with the
// router's results, health samples, operator commands and ticks, publishes every new plan to the router, runs
// the canary probes the machine asks for, and keeps a status snapshot for
// `vigilctl status`. The machine itself stays pure; everything with time,
// goroutines and queues lives here.
package shell

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/watchdog"
)

// Router is what the shell drives: inference.Router implements it.
type Router interface {
	SetPlan(watchdog.Plan)
	Canary(b watchdog.Backend, budget time.Duration) bool
}

// Config tunes the shell.
type Config struct {
	// Tick is how often the machine gets a Tick; 0 means 10ms. It must be
	// at most half the machine's CanaryInterval.
	Tick time.Duration
	// Queue is the capacity of the queue of results from the router;
	// results beyond it are dropped and counted, never waited for. 0
	// means 4096.
	Queue int
	// OnReady, when set, is called on the shell's goroutine after every
	// step that changed something (a new plan, transitions, alerts). The
	// slices in Ready are reused by the next step: copy what you keep, and
	// do not block.
	OnReady func(now time.Time, rd watchdog.Ready)
	// Clock gives the loop its time and its ticks; nil means the system
	// clock. Tests pass a clock.Fake and advance it.
	Clock clock.Clock
}

// report is one message from the router, as a concrete union so that
// queueing it does not allocate.
type report struct {
	kind uint8 // 1 run, 2 comparison, 3 vote, 4 health, 5 request
	run  watchdog.RunResult
	cmp  watchdog.Comparison
	vote watchdog.Vote
	hs   watchdog.HealthSample
	req  watchdog.RequestResult
}

type command struct {
	cmd   watchdog.Command
	reply chan error
}

// Shell runs one machine. Start it with Start, stop it with Close.
type Shell struct {
	cfg    Config
	clock  clock.Clock
	m      *watchdog.Machine
	router Router
	events chan report
	cmds   chan command

	dropped  atomic.Uint64
	lastLoop atomic.Int64 // unix nanoseconds of the loop's last iteration
	status   atomic.Pointer[Status]

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when the loop has returned
}

// Status is the shell's view for status reports.
type Status struct {
	watchdog.Status
	// Dropped counts results the queue had no room for.
	Dropped uint64
	// LastFailover is when the active rung last moved down, and why.
	LastFailover       time.Time
	LastFailoverReason string
	// At is when the snapshot was taken.
	At time.Time
}

// New makes a shell for machine m driving router r.
func New(cfg Config, m *watchdog.Machine, r Router) *Shell {
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	s := &Shell{cfg: cfg, clock: clock.Or(cfg.Clock), m: m, router: r, events: make(chan report, cfg.Queue), cmds: make(chan command), done: make(chan struct{})}
	st := &Status{Status: m.Status(), At: s.clock.Now()}
	s.status.Store(st)
	return s
}

// Start publishes the machine's plan, makes the ticker and starts the
// loop; the loop runs until Close (ctx bounds the start only). A shell
// starts once.
func (s *Shell) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("watchdog shell: start: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("watchdog shell: start after Close")
	case s.started:
		return errors.New("watchdog shell: already started")
	}
	s.started = true
	loopCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.router.SetPlan(s.m.Plan())
	s.lastLoop.Store(s.clock.Now().UnixNano())
	// The ticker is made here, not in the loop, so that a fake clock
	// advanced right after Start already has it.
	go s.loop(loopCtx, s.clock.NewTicker(s.cfg.Tick))
	return nil
}

// Close stops the loop and waits for it until ctx ends. Closing a shell
// that never started, or closing it again, does nothing.
func (s *Shell) Close(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.closed = true
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("watchdog shell: close: the loop has not returned: %w", ctx.Err())
	}
}

// ReportRun queues a run result (a canary's answer); it never blocks.
func (s *Shell) ReportRun(r watchdog.RunResult) { s.queue(report{kind: 1, run: r}) }

// ReportRequest queues the runs of one serving request; it never blocks.
func (s *Shell) ReportRequest(q watchdog.RequestResult) { s.queue(report{kind: 5, req: q}) }

// ReportComparison queues a primary–shadow comparison; it never blocks.
func (s *Shell) ReportComparison(c watchdog.Comparison) { s.queue(report{kind: 2, cmp: c}) }

// ReportVote queues a 2-of-3 vote; it never blocks.
func (s *Shell) ReportVote(v watchdog.Vote) { s.queue(report{kind: 3, vote: v}) }

// Health queues a hardware health sample; it never blocks. The daemon
// turns the hw probes' readings into samples (agent.HealthSample); the
// shell knows nothing of hw.
func (s *Shell) Health(h watchdog.HealthSample) { s.queue(report{kind: 4, hs: h}) }

func (s *Shell) queue(r report) {
	select {
	case s.events <- r:
	default:
		s.dropped.Add(1)
	}
}

// ErrRejected wraps the machine's reason for refusing a command.
var ErrRejected = errors.New("command rejected")

// Command hands an operator command to the machine and waits for its
// verdict.
func (s *Shell) Command(ctx context.Context, c watchdog.Command) error {
	reply := make(chan error, 1)
	select {
	case s.cmds <- command{cmd: c, reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return errors.New("watchdog loop stopped")
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status returns the latest snapshot.
func (s *Shell) Status() Status {
	st := *s.status.Load()
	st.Dropped = s.dropped.Load()
	return st
}

// Alive reports whether the loop has run within maxAge: for systemd's
// watchdog notifications, which must stop when the loop is stuck.
func (s *Shell) Alive(maxAge time.Duration) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	last := s.lastLoop.Load()
	return last != 0 && s.clock.Now().Sub(time.Unix(0, last)) <= maxAge
}

func (s *Shell) loop(ctx context.Context, ticker clock.Ticker) {
	defer close(s.done)
	defer ticker.Stop()
	budget := s.m.Config().Deadline
	var last Status
	last.Status = s.m.Status()
	for {
		var ev watchdog.Event
		var reply chan error
		select {
		case <-ctx.Done():
			return
		case r := <-s.events:
			switch r.kind {
			case 1:
				ev = r.run
			case 2:
				ev = r.cmp
			case 3:
				ev = r.vote
			case 5:
				ev = r.req
			default:
				ev = r.hs
			}
		case c := <-s.cmds:
			ev, reply = c.cmd, c.reply
		case <-ticker.C():
			ev = watchdog.Tick{}
		}
		now := s.clock.Now()
		s.lastLoop.Store(now.UnixNano())
		rd := s.m.Step(now, ev)
		if rd.PlanChanged {
			s.router.SetPlan(rd.Plan)
		}
		for _, c := range rd.Canaries {
			s.router.Canary(c.Backend, budget)
		}
		for _, a := range rd.Alerts {
			if a.Kind == watchdog.AlertFailover {
				last.LastFailover, last.LastFailoverReason = a.At, a.Message
			}
		}
		changed := rd.PlanChanged || len(rd.Transitions) > 0 || len(rd.Alerts) > 0
		if changed && s.cfg.OnReady != nil {
			s.cfg.OnReady(now, rd)
		}
		if _, tick := ev.(watchdog.Tick); changed || reply != nil || tick {
			last.Status, last.At = s.m.Status(), now
			snap := last
			s.status.Store(&snap)
		}
		if reply != nil {
			reply <- rejection(rd.Alerts)
		}
	}
}

func rejection(alerts []watchdog.Alert) error {
	for _, a := range alerts {
		if a.Kind == watchdog.AlertRejected {
			return fmt.Errorf("%w: %s", ErrRejected, a.Message)
		}
	}
	return nil
}
