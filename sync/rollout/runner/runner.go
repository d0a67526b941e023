package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
	"github.com/vigil-av/vigil/sync/rollout/store"
)

// Commander sends one command to one vehicle and returns its answer: the
// response's code and message, or an Ack with no code when none came in
// time. An error is for what kept the command from going out.
type Commander interface {
	Command(ctx context.Context, a rollout.Action) (rollout.Ack, error)
}

// Reports are the vehicles' deploy reports as they stand.
type Reports interface {
	// Latest returns each vehicle's latest report.
	Latest() []deploywire.Report
	// Changed is signalled after a report arrives.
	Changed() <-chan struct{}
}

// Config configures Run.
type Config struct {
	// Dir holds the rollout; ID names it.
	Dir *store.Dir
	ID  string
	// Commander sends model-deploy and model-rollback.
	Commander Commander
	// Reports are the deploy reports (WatchReports).
	Reports Reports
	// Clock reads the time for each step and ticks; nil means the system
	// clock.
	Clock clock.Clock
	// Tick is how often a step runs without news, for the timeouts and
	// for what other processes changed (a pause, an abort); 0 means 1 s.
	Tick time.Duration
	// Parallel bounds the commands in flight; 0 means 16.
	Parallel int
	// OnEntry, when set, is called with each new entry of the rollout's
	// log, in order, from Run's goroutine.
	OnEntry func(rollout.Entry)
}

// ErrNoRollout is what Run returns for a Config that names no rollout
// or misses a part.
var ErrNoRollout = errors.New("runner: incomplete configuration")

type result struct {
	a   rollout.Action
	ack rollout.Ack
}

// Run runs rollout cfg.ID until it is finished (rollout.Finished) or ctx
// ends, and returns its state as last stored. It claims the rollout
// first (store.ErrClaimed when another process runs it). Each step
// takes the reports and the answers that came in, lets the rollout plan
// (rollout.Plan), stores it, and only then sends what it planned, at
// most Parallel at a time. When ctx ends it waits for the commands in
// flight to end (they end with ctx) and returns with no error: a later
// Run resumes from what was stored, sending again what was not
// answered.
func Run(ctx context.Context, cfg Config) (*rollout.Rollout, error) {
	if cfg.Dir == nil || cfg.Commander == nil || cfg.Reports == nil || cfg.ID == "" {
		return nil, fmt.Errorf("%w: Dir, ID, Commander and Reports are required", ErrNoRollout)
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 16
	}
	if _, err := cfg.Dir.Load(cfg.ID); err != nil {
		return nil, err
	}
	claim, err := cfg.Dir.Claim(cfg.ID)
	if err != nil {
		return nil, err
	}
	defer claim.Release()

	rn := &run{cfg: cfg, results: make(chan result, cfg.Parallel), sem: make(chan struct{}, cfg.Parallel)}
	sctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		rn.wg.Wait()
	}()
	ticker := cfg.Clock.NewTicker(cfg.Tick)
	defer ticker.Stop()
	var pending []result
	for {
		r, actions, err := rn.step(pending)
		pending = nil
		if err != nil {
			return r, err
		}
		if r.Finished() && rn.inFlight == 0 {
			return r, nil
		}
		for _, a := range actions {
			rn.dispatch(sctx, a)
		}
		select {
		case <-ctx.Done():
			cancel()
			rn.wg.Wait()
			return r, nil
		case res := <-rn.results:
			rn.inFlight--
			pending = append(pending, res)
			// Take whatever else has come meanwhile in the same step.
			for more := true; more; {
				select {
				case res := <-rn.results:
					rn.inFlight--
					pending = append(pending, res)
				default:
					more = false
				}
			}
		case <-cfg.Reports.Changed():
		case <-ticker.C():
		}
	}
}

type run struct {
	cfg      Config
	results  chan result
	sem      chan struct{}
	wg       sync.WaitGroup
	inFlight int // owned by Run's goroutine
	logged   int // entries of the log passed to OnEntry
	started  bool
}

// step applies the answers and reports to the stored rollout, plans, and
// stores it.
func (rn *run) step(answers []result) (*rollout.Rollout, []rollout.Action, error) {
	now := rn.cfg.Clock.Now()
	reports := rn.cfg.Reports.Latest()
	var actions []rollout.Action
	r, err := rn.cfg.Dir.Update(rn.cfg.ID, func(r *rollout.Rollout) error {
		if !rn.started {
			// Entries logged before this run were shown by whoever took
			// them.
			rn.logged, rn.started = len(r.Log), true
		}
		n0 := len(r.Log)
		changed := false
		for _, rep := range reports {
			changed = r.Observe(now, rep) || changed
		}
		for _, a := range answers {
			changed = r.Acknowledge(now, a.a.Vehicle, a.a.CorrelationID, a.ack) || changed
		}
		actions = r.Plan(now)
		if !changed && len(actions) == 0 && len(r.Log) == n0 {
			return store.ErrUnchanged
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("rollout %s: %w", rn.cfg.ID, err)
	}
	if rn.cfg.OnEntry != nil {
		for _, e := range r.Log[min(rn.logged, len(r.Log)):] {
			rn.cfg.OnEntry(e)
		}
	}
	rn.logged = len(r.Log)
	return r, actions, nil
}

// dispatch sends a on a goroutine of its own once a slot is free; the
// answer comes back on rn.results.
func (rn *run) dispatch(ctx context.Context, a rollout.Action) {
	rn.inFlight++
	rn.wg.Add(1)
	go func() {
		defer rn.wg.Done()
		var ack rollout.Ack
		select {
		case rn.sem <- struct{}{}:
			var err error
			ack, err = rn.cfg.Commander.Command(ctx, a)
			<-rn.sem
			if err != nil {
				ack = rollout.Ack{Message: "not sent: " + err.Error()}
			}
		case <-ctx.Done():
			ack = rollout.Ack{Message: "not sent: " + ctx.Err().Error()}
		}
		select {
		case rn.results <- result{a, ack}:
		case <-ctx.Done():
		}
	}()
}
