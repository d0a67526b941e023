package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/watchdog"
)

// drills is the daemon's drill runner: at most one run at a time, started
// by vigilctl (the socket's DRILL_REQUEST) or a fleet command, ended by
// its last phase, the vehicle leaving parked, or the daemon stopping.
type drills struct {
	ctx    context.Context // ended by closeDrills; every run's parent
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // the runs' goroutines

	mu  sync.Mutex
	cur *drillRun // the run going on; nil when none
	// rec is cur's recorder while it runs, for the watchdog's transitions
	// (drillReady): one atomic load per watchdog change when no drill
	// runs.
	rec atomic.Pointer[drill.Recorder]
	// keepMu orders the writes of the reports' index.
	keepMu sync.Mutex
}

// drillRun is one run going on.
type drillRun struct {
	id, name string
	phase    atomic.Pointer[string] // the phase going on
}

// Causes of an aborted run.
var (
	errDrillLeftParked = errors.New("the vehicle left parked (the supervisor reports it driving)")
	errDrillStopping   = errors.New("the daemon is stopping")
)

// drillRefusal is a run refused before it started, with the code a
// DRILL_RESPONSE answers.
type drillRefusal struct {
	code wire.ControlCode
	msg  string
}

func (r *drillRefusal) Error() string { return r.msg }

func refuseDrill(code wire.ControlCode, format string, a ...any) *drillRefusal {
	return &drillRefusal{code: code, msg: fmt.Sprintf(format, a...)}
}

// startDrills readies the runner; closeDrills stops a run going on (its
// faults cleared, its report kept, aborted) and waits for it.
func (d *Daemon) startDrills(context.Context) error {
	d.drills.ctx, d.drills.cancel = context.WithCancelCause(context.Background())
	return nil
}

func (d *Daemon) closeDrills(ctx context.Context) error {
	d.drills.cancel(errDrillStopping)
	done := make(chan struct{})
	go func() { d.drills.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drill runner: a run still clearing its faults: %w", ctx.Err())
	}
}

// drillID is a report's id: the start's UTC time and the drill's name.
func drillID(started time.Time, name string) string {
	return started.UTC().Format("20060102T150405Z") + "-" + name
}

// startDrill checks that a run may start — drills allowed, the vehicle
// parked, none running, storage to keep the report, the daemon able to
// inject the scenario's faults — and starts it on its own goroutine. It
// returns the report's id at once.
func (d *Daemon) startDrill(s drill.Scenario, origin string) (string, *drillRefusal) {
	if !d.cfg.Drills.Allowed {
		return "", refuseDrill(wire.ControlDrillsDisabled, "drills are off in this daemon's configuration (drills.allowed)")
	}
	if d.moving() {
		return "", refuseDrill(wire.ControlNotParked, "drills need the vehicle parked; the supervisor reports it %s", wire.VehicleState(d.vehicle.Load()))
	}
	if d.tel == nil {
		return "", refuseDrill(wire.ControlFailed, "drills keep their reports in the telemetry buffer, which is %s", d.storageState)
	}
	if !d.running.Load() || d.drills.ctx.Err() != nil {
		return "", refuseDrill(wire.ControlFailed, "the daemon is not running drills now (starting or stopping)")
	}
	if err := d.drillPreflight(s); err != nil {
		return "", refuseDrill(wire.ControlInvalidArgument, "drill %s cannot run on this daemon: %v", s.Name, err)
	}
	d.drills.mu.Lock()
	defer d.drills.mu.Unlock()
	if cur := d.drills.cur; cur != nil {
		return "", refuseDrill(wire.ControlBusy, "drill %s is running (report %s); one drill at a time", cur.name, cur.id)
	}
	started := time.Now()
	id := drillID(started, s.Name)
	if d.drillKept(id) {
		// Two runs of one drill in the same second.
		id = fmt.Sprintf("%s-%d", id, started.Nanosecond()/int(time.Millisecond))
	}
	run := &drillRun{id: id, name: s.Name}
	first := "starting"
	run.phase.Store(&first)
	d.drills.cur = run
	d.drills.wg.Add(1)
	go d.runDrill(run, s, origin, started)
	d.log.Warn("drill started", zap.String("drill", s.Name), zap.String("id", id), zap.String("origin", origin))
	return id, nil
}

// runDrill waits for a healthy ladder, drives the load, applies each
// phase's fault, and keeps the report. The faults are cleared whatever
// happens.
func (d *Daemon) runDrill(run *drillRun, s drill.Scenario, origin string, asked time.Time) {
	defer d.drills.wg.Done()
	ctx, cancel := context.WithCancelCause(d.drills.ctx)
	defer cancel(nil)
	stopWatch := d.watchParked(ctx, cancel)
	settling := "waiting for a healthy ladder"
	run.phase.Store(&settling)
	if why := d.drillSettle(ctx); why != "" {
		stopWatch()
		rep := drill.NewRecorder(s, d.cfg.VehicleID, Version, origin, asked).Finish(time.Now(), why)
		rep.ID = run.id
		d.finishDrill(rep)
		return
	}
	started := time.Now()
	rec := drill.NewRecorder(s, d.cfg.VehicleID, Version, origin, started)
	d.drillLadderStart(rec, started)
	d.drills.rec.Store(rec)
	load := d.startDrillLoad(s.Load, rec)
	samp := d.startDrillSampler(rec)

	aborted := ""
	for i, ph := range s.Phases {
		if ctx.Err() != nil {
			aborted = context.Cause(ctx).Error()
			break
		}
		run.phase.Store(&s.Phases[i].Name)
		if err := d.runPhase(ctx, i, ph, rec); err != nil {
			aborted = err.Error()
			break
		}
	}
	if aborted == "" && ctx.Err() != nil {
		aborted = context.Cause(ctx).Error()
	}
	load.stop()
	samp.stop()
	stopWatch()
	d.drills.rec.Store(nil)
	rep := rec.Finish(time.Now(), aborted)
	rep.ID = run.id
	d.finishDrill(rep)
}

// finishDrill keeps a run's report and ends the run.
func (d *Daemon) finishDrill(rep *drill.Report) {
	d.keepDrillReport(rep)
	d.drills.mu.Lock()
	d.drills.cur = nil
	d.drills.mu.Unlock()
	lvl := d.log.Warn
	if rep.Passed {
		lvl = d.log.Info
	}
	lvl("drill ended", zap.String("drill", rep.Name), zap.String("id", rep.ID), zap.Bool("passed", rep.Passed),
		zap.String("aborted", rep.Aborted), zap.Strings("failures", rep.Failures))
}

// drillSettleMax bounds how long a run waits, before its first phase, for
// every loaded rung to be healthy; drillSettlePoll is how often it looks.
// (Atomic so that tests can shorten it while a daemon runs.)
var drillSettleMax atomic.Int64 // nanoseconds

func init() { drillSettleMax.Store(int64(15 * time.Second)) }

const drillSettlePoll = 20 * time.Millisecond

// drillSettle waits until every loaded backend is healthy, so that a run
// measures its own faults and not the end of an earlier one (a rung still
// in probation, or forced out). It returns "" then, or why the run cannot
// start: the ladder stayed unhealthy for drillSettleMax, or ctx ended.
func (d *Daemon) drillSettle(ctx context.Context) string {
	settleMax := time.Duration(drillSettleMax.Load())
	limit := time.Now().Add(settleMax)
	for {
		ws := d.shell.Status()
		var sick []string
		for b := range watchdog.NumBackends {
			if d.backends[b] == nil {
				continue
			}
			if st := ws.Backends[b].State; st != watchdog.Healthy {
				sick = append(sick, watchdog.Backend(b).String()+" "+st.String())
			}
		}
		if len(sick) == 0 {
			return ""
		}
		if time.Now().After(limit) {
			return fmt.Sprintf("not started: the ladder was not healthy %v after the drill was asked for (%s); a drill starts from a healthy ladder (a rung forced out needs vigilctl clear)",
				settleMax, strings.Join(sick, ", "))
		}
		select {
		case <-ctx.Done():
			return "not started: " + context.Cause(ctx).Error()
		case <-time.After(drillSettlePoll):
		}
	}
}

// drillClearTimeout bounds the clearing of one fault.
const drillClearTimeout = 10 * time.Second

// runPhase runs phase i: its start, its fault, its duration, the fault's
// clearing (always, even when ctx ends), its end. An error aborts the run.
func (d *Daemon) runPhase(ctx context.Context, i int, ph drill.Phase, rec *drill.Recorder) (err error) {
	rec.PhaseStarted(i, time.Now())
	defer func() { rec.PhaseEnded(i, time.Now()) }()
	if ph.Fault != nil {
		note := func(label string) { rec.Note(time.Now(), label) }
		clear, ferr := d.drillFault(ctx, *ph.Fault, note)
		if ferr != nil {
			return fmt.Errorf("phase %s: %s: %w", ph.Name, ph.Fault, ferr)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drillClearTimeout)
			defer cancel()
			if cerr := clear(cctx); cerr != nil {
				d.log.Error("drill: a fault was not cleared", zap.String("phase", ph.Name), zap.Error(cerr))
				err = errors.Join(err, fmt.Errorf("phase %s: clearing %s: %w", ph.Name, ph.Fault, cerr))
			}
		}()
	}
	t := time.NewTimer(ph.Duration)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// drillParkedPoll is how often a run checks that the vehicle is parked.
const drillParkedPoll = 5 * time.Millisecond

// watchParked cancels ctx with errDrillLeftParked when the supervisor
// reports the vehicle no longer parked. The returned func stops it.
func (d *Daemon) watchParked(ctx context.Context, cancel context.CancelCauseFunc) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(drillParkedPoll)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if d.moving() {
					cancel(errDrillLeftParked)
					return
				}
			}
		}
	}()
	return func() { close(stop); <-done }
}

// drillLadderStart records each backend's state at the start.
func (d *Daemon) drillLadderStart(rec *drill.Recorder, at time.Time) {
	ws := d.shell.Status()
	for b := range watchdog.NumBackends {
		bs := ws.Backends[b]
		rec.Ladder(at, watchdog.Backend(b).String(), bs.State.String(), bs.Reason)
	}
}

// drillReady hands the watchdog's transitions to the run going on. It runs
// on the watchdog's goroutine (onReady), with the same time the events
// stream's transition records carry.
// A fail-back the switch cap deferred goes in as a note: it says why the
// primary did not come back.
func (d *Daemon) drillReady(now time.Time, rd watchdog.Ready) {
	if len(rd.Transitions) == 0 && len(rd.Alerts) == 0 {
		return
	}
	rec := d.drills.rec.Load()
	if rec == nil {
		return
	}
	for _, t := range rd.Transitions {
		rec.Ladder(now, t.Backend.String(), t.To.String(), t.Reason)
	}
	for _, a := range rd.Alerts {
		if a.Kind == watchdog.AlertFailbackDeferred {
			rec.Note(now, "watchdog: "+a.Message)
		}
	}
}

// drillCurrent returns the run going on, nil when none.
func (d *Daemon) drillCurrent() *drillRun {
	d.drills.mu.Lock()
	defer d.drills.mu.Unlock()
	return d.drills.cur
}
