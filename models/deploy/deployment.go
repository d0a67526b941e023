package deploy

import (
	"fmt"
	"time"
)

// Deployment is the lifecycle of one bundle for one role on the vehicle:
// a pure state machine. It is not safe for concurrent use: one goroutine
// (the shell) owns it, feeds it events with Step, persists Save when told
// and executes the actions.
type Deployment struct {
	cfg Config
	s   Saved

	now      time.Time // latest time seen; Step never goes back
	deadline time.Time // of the live state; zero when over
	parked   bool      // the vehicle's latest Motion; false = moving or unknown
	resumed  bool      // false from Restore until Restarted
	download Progress  // not persisted: the download resumes from its own record

	actions []Action // of the current Step
}

// Progress is how much of the bundle the download has.
type Progress struct {
	Have, Total int64
}

// New starts a deployment of spec, in Downloading, at time now. The
// effective options are recorded in the spec: ParkedOnly and SkipTrial are
// set when either the spec or cfg sets them, and stay as they are for the
// deployment's life. The Ready holds the first Download and its Report.
func New(cfg Config, spec Spec, now time.Time) (*Deployment, Ready, error) {
	if err := cfg.Validate(); err != nil {
		return nil, Ready{}, err
	}
	if err := spec.Validate(); err != nil {
		return nil, Ready{}, fmt.Errorf("deploy: %w", err)
	}
	now = now.Round(0)
	spec.ParkedOnly = spec.ParkedOnly || cfg.ParkedOnly
	spec.SkipTrial = spec.SkipTrial || cfg.SkipTrial
	d := &Deployment{
		cfg:     cfg,
		s:       Saved{Format: SavedFormat, Spec: spec, Started: now, Since: now},
		now:     now,
		resumed: true,
	}
	d.to(now, Downloading, fmt.Sprintf("deploy %s issued %s", spec, spec.Issued.UTC().Format(time.RFC3339)))
	return d, Ready{Actions: d.actions, Changed: true}, nil
}

// Restore brings back a deployment from its saved state. It takes no
// event but Restarted, which decides how it resumes.
func Restore(cfg Config, s Saved) (*Deployment, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &Deployment{cfg: cfg, s: s}, nil
}

// Step applies one event at time now and returns what follows. Time never
// goes back: a now earlier than one seen before is taken as that one.
// The rules of time apply first (a timeout due, a trial or health gate
// whose duration is reached), then the event. A rejected event
// (Ready.Rejected) changes nothing: the step is then what a Tick would
// have been.
func (d *Deployment) Step(now time.Time, ev Event) Ready {
	now = now.Round(0)
	if now.Before(d.now) {
		now = d.now
	}
	d.now = now
	d.actions = nil
	before := d.s
	if !d.resumed {
		r, ok := ev.(Restarted)
		if !ok {
			return Ready{Rejected: fmt.Errorf("%w: %T before Restarted", ErrNotResumed, ev)}
		}
		err := d.restart(now, r)
		return Ready{Actions: d.actions, Changed: d.s != before, Rejected: err}
	}
	st, held := d.s.State, d.s.Held
	d.expire(now)
	d.judge(now)
	// An answer cannot be to an action of this very step: a state the
	// rules of time just entered takes none yet.
	moved := d.s.State != st || d.s.Held != held
	err := d.apply(now, ev, moved)
	return Ready{Actions: d.actions, Changed: d.s != before, Rejected: err}
}

// apply handles one event; an error leaves the deployment as it was.
// moved says that the rules of time changed the state at this step.
func (d *Deployment) apply(now time.Time, ev Event, moved bool) error {
	switch e := ev.(type) {
	case Tick:
		return nil
	case Motion:
		d.motion(now, e)
		return nil
	case Command:
		return d.command(now, e)
	case Newer:
		return d.newer(now, e)
	case Restarted:
		if err := e.validate(); err != nil {
			return err
		}
		return fmt.Errorf("%w: restarted: the deployment was not restored", ErrUnexpected)
	case nil:
		return fmt.Errorf("%w: nil event", ErrBadEvent)
	}
	if err := validate(ev); err != nil {
		return err
	}
	if d.s.State.Terminal() {
		return fmt.Errorf("%w: %s: %s", ErrDone, eventName(ev), d.s.State)
	}
	if !expected(d.s.State, d.s.Held, ev) {
		return fmt.Errorf("%w: %s in state %s", ErrUnexpected, eventName(ev), d.stateName())
	}
	if moved {
		return fmt.Errorf("%w: %s: the deployment entered %s at this step", ErrUnexpected, eventName(ev), d.stateName())
	}
	d.answer(now, ev)
	return nil
}

// answer applies an event that validate and expected let through.
func (d *Deployment) answer(now time.Time, ev Event) {
	switch e := ev.(type) {
	case DownloadProgress:
		d.download = Progress{e.Have, e.Total}
	case DownloadDone:
		d.to(now, Verifying, "downloaded")
	case DownloadFailed:
		d.finish(now, Failed, "download failed: "+orNone(e.Reason), false)
	case VerifyDone:
		tol, from := d.cfg.Tolerance, "the configuration"
		if e.Tolerance != nil {
			tol, from = *e.Tolerance, "the manifest"
		}
		d.s.Tolerance = tol
		d.to(now, Verified, fmt.Sprintf("verified; trial tolerance %s from %s", d.s.Tolerance, from))
	case VerifyRefused:
		d.finish(now, Refused, "verification refused: "+orNone(e.Reason), false)
	case InstallDone:
		d.to(now, Staged, "installed in the candidate slot")
	case InstallFailed:
		if e.Refused {
			d.finish(now, Refused, "install refused: "+orNone(e.Reason), false)
		} else {
			d.finish(now, Failed, "install failed: "+orNone(e.Reason), false)
		}
	case TrialStarted:
		d.to(now, Trial, fmt.Sprintf("trial started: sample rate %g, cost cap %g", d.cfg.TrialSampleRate, d.cfg.TrialCostCap))
	case TrialStartFailed:
		d.finish(now, TrialFailed, "trial did not start: "+orNone(e.Reason), true)
	case TrialSample:
		d.sample(now, e)
	case PromoteDone:
		d.to(now, Promoted, "promoted; the health gate starts")
	case PromoteFailed:
		if e.Swapped {
			d.rollback(now, "promotion failed after the swap: "+orNone(e.Reason))
		} else {
			d.finish(now, Failed, "promotion failed; the previous model still serves: "+orNone(e.Reason), true)
		}
	case Served:
		d.served(now, e)
	case WatchdogFailed:
		d.rollback(now, "health gate: the watchdog failed it: "+orNone(e.Reason))
	case WatchdogSuspect:
		d.suspect(now, e)
	case CommitDone:
		d.to(now, Committed, fmt.Sprintf("committed; the anti-rollback floor of %s is %d", d.s.Spec.Name, d.s.Spec.Version))
	case CommitFailed:
		d.finish(now, Failed, fmt.Sprintf("commit failed; v%d stays active, uncommitted: %s", d.s.Spec.Version, orNone(e.Reason)), false)
	case RollbackDone:
		d.to(now, RolledBack, d.s.Quarantine)
	case RollbackFailed:
		d.finish(now, Failed, fmt.Sprintf("rollback failed: %s (rolling back because %s)", orNone(e.Reason), d.s.Quarantine), false)
	}
}

// expected says whether ev answers what state s (held or not) waits for.
func expected(s State, held bool, ev Event) bool {
	switch ev.(type) {
	case DownloadProgress, DownloadDone, DownloadFailed:
		return s == Downloading
	case VerifyDone, VerifyRefused:
		return s == Verifying
	case InstallDone, InstallFailed:
		return s == Verified
	case TrialStarted, TrialStartFailed:
		return s == Staged
	case TrialSample:
		return s == Trial
	case PromoteDone, PromoteFailed:
		return s == Promoting && !held
	case Served, WatchdogFailed, WatchdogSuspect:
		return s == Promoted
	case CommitDone, CommitFailed:
		return s == Committing
	case RollbackDone, RollbackFailed:
		return s == RollingBack
	}
	return false
}

// to enters state st with reason: it reports the change and runs the
// state's entry.
func (d *Deployment) to(now time.Time, st State, reason string) {
	from := d.s.State
	d.s.State, d.s.Reason, d.s.Since, d.s.Held = st, reason, now, false
	d.emit(Report{Transition{From: from, To: st, Reason: reason, At: now}})
	d.enter(now)
}

// again starts the current state over (a restart, a parked promotion
// starting): it reports From == To and runs the state's entry again.
func (d *Deployment) again(now time.Time, reason string) {
	d.s.Reason, d.s.Since, d.s.Held = reason, now, false
	d.emit(Report{Transition{From: d.s.State, To: d.s.State, Reason: reason, At: now}})
	d.enter(now)
}

// enter emits the entry actions of the current state and sets its
// deadline.
func (d *Deployment) enter(now time.Time) {
	switch d.s.State {
	case Downloading:
		d.download = Progress{}
		d.emit(Download{})
	case Verifying:
		d.emit(Verify{})
	case Verified:
		d.emit(Install{})
	case Staged:
		d.emit(DropDownload{}) // the slot has the files now
		if d.s.Spec.SkipTrial {
			d.to(now, Promoting, "trial skipped (skip_trial)")
			return
		}
		d.emit(StartTrial{SampleRate: d.cfg.TrialSampleRate, CostCap: d.cfg.TrialCostCap, Tolerance: d.s.Tolerance})
	case Trial:
		d.s.Trial = TrialCounts{Started: now, Errors: d.s.Trial.Errors, LastError: d.s.Trial.LastError}
	case Promoting:
		if d.s.Spec.ParkedOnly && !d.parked {
			d.s.Held = true
		} else {
			d.emit(Promote{})
		}
	case Promoted:
		d.s.Gate = GateCounts{Started: now, Suspects: d.s.Gate.Suspects}
	case Committing:
		d.emit(Commit{})
	case RollingBack:
		d.emit(Rollback{Reason: d.s.Quarantine})
	}
	d.deadline = time.Time{}
	if !d.s.State.Terminal() {
		d.deadline = now.Add(d.cfg.Timeouts.For(d.s.State, d.s.Held))
	}
}

// finish ends the deployment in outcome, cleaning up after the state it
// leaves: the download, the trial, the candidate slot (rejected, that is
// quarantined, when quarantine is set; discarded otherwise). A state from
// the swap on needs no cleanup here: what serves is restored by rollback.
func (d *Deployment) finish(now time.Time, outcome State, reason string, quarantine bool) {
	switch d.s.State {
	case Downloading, Verifying:
		d.emit(DropDownload{})
	case Verified:
		d.emit(DropDownload{})
		d.drop(reason, quarantine)
	case Staged, Trial:
		d.emit(StopTrial{})
		d.drop(reason, quarantine)
	case Promoting:
		d.drop(reason, quarantine) // held, or failed before the swap
	}
	d.to(now, outcome, reason)
}

func (d *Deployment) drop(reason string, quarantine bool) {
	if quarantine {
		d.s.Quarantine = reason
		d.emit(Reject{Reason: reason})
	} else {
		d.emit(Discard{})
	}
}

// rollback restores the previous model: Rollback, then RollingBack.
func (d *Deployment) rollback(now time.Time, reason string) {
	d.s.Quarantine = reason
	d.to(now, RollingBack, reason)
}

func (d *Deployment) emit(a Action) { d.actions = append(d.actions, a) }

// expire applies the timeout of the live state when it is due.
func (d *Deployment) expire(now time.Time) {
	if d.s.State.Terminal() || now.Before(d.deadline) {
		return
	}
	after := d.cfg.Timeouts.For(d.s.State, d.s.Held)
	switch d.s.State {
	case Downloading:
		d.finish(now, TimedOut, fmt.Sprintf("download timed out after %v (%d of %d bytes)", after, d.download.Have, d.download.Total), false)
	case Trial:
		t := d.s.Trial
		d.finish(now, TimedOut, fmt.Sprintf("trial timed out after %v: %d of %d compared requests, %d errors", after, t.Compared, d.cfg.TrialMinRequests, t.Errors), false)
	case Promoting:
		if d.s.Held {
			d.finish(now, TimedOut, fmt.Sprintf("waited %v for the vehicle to park", after), false)
		} else {
			d.rollback(now, fmt.Sprintf("promotion did not finish within %v", after))
		}
	case Promoted:
		g := d.s.Gate
		d.rollback(now, fmt.Sprintf("health gate timed out after %v: %d of %d requests since %s", after, g.Requests, d.cfg.GateRequests, g.Started.UTC().Format(time.RFC3339)))
	case Committing:
		d.finish(now, TimedOut, fmt.Sprintf("commit did not finish within %v; v%d stays active, uncommitted", after, d.s.Spec.Version), false)
	default: // Verifying, Verified, Staged, RollingBack
		d.finish(now, TimedOut, fmt.Sprintf("%s timed out after %v", d.s.State, after), false)
	}
}

// judge applies the rules of time within a state: a trial or health gate
// whose counts were reached passes (or fails) once its duration is.
func (d *Deployment) judge(now time.Time) {
	switch d.s.State {
	case Trial:
		d.judgeTrial(now)
	case Promoted:
		d.judgeGate(now)
	}
}

// motion records whether the vehicle is parked; a held promotion starts
// once it is.
func (d *Deployment) motion(now time.Time, m Motion) {
	d.parked = m.Parked
	if d.s.State == Promoting && d.s.Held && m.Parked {
		d.again(now, "the vehicle is parked; promotion starts")
	}
}

func (d *Deployment) stateName() string {
	if d.s.Held {
		return d.s.State.String() + " (waiting for the vehicle to park)"
	}
	return d.s.State.String()
}

func orNone(reason string) string {
	if reason == "" {
		return "no reason given"
	}
	return reason
}
