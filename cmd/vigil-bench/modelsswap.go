package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/watchdog"
	"github.com/vigil-av/vigil/watchdog/shell"
)

// replaceTimeout bounds one Replace: loading and warming the model, and
// waiting for the old model's runs in flight.
const replaceTimeout = 30 * time.Second

// swapEvent is one Replace under load, and the frames of its window.
type swapEvent struct {
	name       string // promotion/1, rollback/1, ...
	start, end time.Time
	sw         inference.Swap
	stats      phaseStats
}

func (e *swapEvent) replace() time.Duration { return e.end.Sub(e.start) }

// swapResults are the swap part's figures.
type swapResults struct {
	promotions, rollbacks []*swapEvent
	steady                phaseStats
	transitions           []watchdog.Transition
}

// missed totals the missed frames of events' windows.
func (r swapResults) missed(events []*swapEvent) int {
	n := 0
	for _, e := range events {
		n += e.stats.missed
	}
	return n
}

// swapLadder is the three demo models behind a router and the watchdog,
// as vigild runs them (no fault injectors: drills off).
type swapLadder struct {
	backends [watchdog.NumBackends]*inference.Backend
	router   *inference.Router
	shell    *shell.Shell
	policy   watchdog.Policy

	mu          sync.Mutex
	transitions []watchdog.Transition
}

func startSwapLadder(ctx context.Context, models modelsDir) (l *swapLadder, err error) {
	l = &swapLadder{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	var runners [watchdog.NumBackends]inference.Runner
	for b, role := range demo.Roles {
		if l.backends[b], err = inference.Load(inference.Config{Name: role, ModelPath: models.path(role)}); err != nil {
			return nil, err
		}
		runners[b] = l.backends[b]
	}
	cfg := watchdog.DefaultConfig()
	l.policy = cfg.Policy
	m, err := watchdog.New(cfg)
	if err != nil {
		return nil, err
	}
	fwd := &forwarder{}
	if l.router, err = inference.NewRouter(inference.RouterConfig{}, runners, fwd); err != nil {
		return nil, err
	}
	l.shell = shell.New(shell.Config{OnReady: func(_ time.Time, rd watchdog.Ready) {
		l.mu.Lock()
		l.transitions = append(l.transitions, rd.Transitions...)
		l.mu.Unlock()
	}}, m, l.router)
	fwd.s = l.shell
	if err := l.shell.Start(ctx); err != nil {
		l.shell = nil
		return nil, err
	}
	return l, nil
}

// close stops the watchdog and the router, then releases the models.
func (l *swapLadder) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if l.shell != nil {
		errs = append(errs, l.shell.Close(ctx))
	}
	if l.router != nil {
		errs = append(errs, l.router.Close(ctx))
	}
	for _, be := range l.backends {
		if be != nil {
			errs = append(errs, be.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

// runSwaps streams frames through the ladder and, --swaps times, promotes
// candidate in place of the primary and rolls back to the original, each
// after --hold; then it prints the phases.
func runSwaps(ctx context.Context, f modelsFlags, models modelsDir, candidate string, stdout io.Writer) (res swapResults, err error) {
	l, err := startSwapLadder(ctx, models)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, l.close()) }()
	original := models.path(demo.RolePrimary)
	before := l.backends[watchdog.Primary].Info().Model
	fmt.Fprintf(stdout, "swap: %s, %s and %s on the CPU behind the router and the watchdog (policy %s), %.0f frames/s, deadline %v, %d workers; a window runs from %v before a Replace until %v after it returns\n",
		demo.RolePrimary, demo.RoleShadow, demo.RoleDegraded, l.policy, f.rate, f.deadline, streamWorkers, swapMargin, swapMargin)

	s := startFrameStream(l.router, l.backends[watchdog.Degraded], f.rate, f.deadline)
	events, werr := swapSchedule(ctx, f, l.router, candidate, original, before.Version)
	frames, serr := s.end()
	if err := errors.Join(werr, serr); err != nil {
		return res, err
	}
	for _, e := range events {
		if strings.HasPrefix(e.name, "promotion") {
			res.promotions = append(res.promotions, e)
		} else {
			res.rollbacks = append(res.rollbacks, e)
		}
	}
	classify(frames, events, &res.steady)
	l.mu.Lock()
	res.transitions = append(res.transitions, l.transitions...)
	l.mu.Unlock()
	printSwaps(stdout, res, events)
	return res, nil
}

// swapSchedule holds, then promotes and rolls back --swaps times, holding
// after each Replace; it checks each swap put the model asked for in
// service.
func swapSchedule(ctx context.Context, f modelsFlags, r *inference.Router, candidate, original, originalVersion string) ([]*swapEvent, error) {
	var events []*swapEvent
	if err := sleepCtx(ctx, f.hold); err != nil {
		return nil, err
	}
	for n := 1; n <= f.swaps; n++ {
		for _, step := range []struct{ kind, path, want string }{
			{"promotion", candidate, demo.PrimaryV2Version},
			{"rollback", original, originalVersion},
		} {
			e := &swapEvent{name: fmt.Sprintf("%s/%d", step.kind, n)}
			rctx, cancel := context.WithTimeout(ctx, replaceTimeout)
			e.start = time.Now()
			sw, err := r.Replace(rctx, watchdog.Primary, step.path)
			e.end = time.Now()
			cancel()
			if err != nil {
				return events, fmt.Errorf("%s: %w", e.name, err)
			}
			if sw.New.Version != step.want {
				return events, fmt.Errorf("%s: the primary runs %s %s, want version %s", e.name, sw.New.Name, sw.New.Version, step.want)
			}
			e.sw = sw
			events = append(events, e)
			if err := sleepCtx(ctx, f.hold); err != nil {
				return events, err
			}
		}
	}
	return events, nil
}

// classify puts each frame in the window of the event it was sent in,
// from swapMargin before its Replace began to swapMargin after it
// returned, or else in steady.
func classify(frames []frameRecord, events []*swapEvent, steady *phaseStats) {
	for _, fr := range frames {
		st := steady
		for _, e := range events {
			if !fr.sent.Before(e.start.Add(-swapMargin)) && !fr.sent.After(e.end.Add(swapMargin)) {
				st = &e.stats
				break
			}
		}
		st.add(fr)
	}
}

// printSwaps prints the phase table and what the watchdog did.
func printSwaps(w io.Writer, res swapResults, events []*swapEvent) {
	fmt.Fprintln(w, phaseHeader())
	fmt.Fprintln(w, res.steady.line("steady", "-", "-"))
	for _, e := range events {
		fmt.Fprintln(w, e.stats.line(e.name, fmt.Sprintf("%.1f", ms(e.replace())), fmt.Sprintf("%.1f", ms(e.sw.Load))))
	}
	for _, e := range events {
		fmt.Fprintf(w, "%s: %s %s -> %s %s (%s); old sessions destroyed before Replace returned: %v\n",
			e.name, e.sw.Old.Name, e.sw.Old.Version, e.sw.New.Name, e.sw.New.Version, e.sw.New.Path, e.sw.OldClosed)
	}
	if len(res.transitions) == 0 {
		fmt.Fprintln(w, "watchdog: no transition during the swap part (every rung stayed in the state it started in)")
		return
	}
	var ts []string
	for _, t := range res.transitions {
		ts = append(ts, t.String())
	}
	fmt.Fprintf(w, "watchdog: %d transitions during the swap part: %s\n", len(ts), strings.Join(ts, "; "))
}

// sleepCtx sleeps for d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
