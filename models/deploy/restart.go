package deploy

import (
	"fmt"
	"time"
)

// restart resumes a restored deployment (see the package documentation,
// "Restarts"). Every live state's timer starts over.
func (d *Deployment) restart(now time.Time, r Restarted) error {
	if err := r.validate(); err != nil {
		return err
	}
	d.resumed = true
	st := d.s.State
	if st.Terminal() {
		d.tidy(r.Slot)
		return nil
	}
	if !slotExpected(st, d.s.Held, r.Slot) {
		d.finish(now, Failed, fmt.Sprintf("after a restart in %s the slot table has v%d at %s", d.stateName(), d.s.Spec.Version, r.Slot), false)
		return nil
	}
	if !r.Clean && d.candidateLoaded() {
		d.s.Crashes = addSat(d.s.Crashes, 1)
		if d.s.Crashes > d.cfg.MaxCrashes {
			d.blameCrashes(now, r.Slot)
			return nil
		}
	}
	how := "the daemon restarted"
	if !r.Clean {
		how = fmt.Sprintf("the daemon restarted after a crash (%d while the candidate was loaded)", d.s.Crashes)
		if !d.candidateLoaded() {
			how = "the daemon restarted after a crash"
		}
	}
	d.resume(now, r.Slot, how)
	return nil
}

// resume continues st after a restart, r.Slot being what slotExpected
// allows.
func (d *Deployment) resume(now time.Time, slot SlotPosition, how string) {
	switch st := d.s.State; {
	case st == Verified && slot == SlotCandidate:
		d.to(now, Staged, how+"; the install had finished")
	case st == Trial:
		t := d.s.Trial
		d.s.Trial = TrialCounts{Errors: t.Errors, LastError: t.LastError}
		d.to(now, Staged, fmt.Sprintf("%s; the trial starts over (%d compared requests dropped, %d errors kept)", how, t.Compared, t.Errors))
	case st == Promoting && !d.s.Held && slot == SlotCandidate:
		d.finish(now, Failed, how+" mid-promotion before the slot switch; the previous model still serves", false)
	case st == Promoting && !d.s.Held:
		d.to(now, Promoted, how+" mid-promotion after the slot switch; rolling forward, the health gate starts")
	case st == Promoted:
		d.again(now, how+"; the health gate starts over")
	case st == Committing && slot == SlotCommitted:
		d.to(now, Committed, how+"; the commit had finished")
	case st == RollingBack && slot == SlotNone:
		d.to(now, RolledBack, d.s.Quarantine)
	default:
		d.again(now, how+"; "+d.s.State.String()+" resumes")
	}
}

// slotExpected says whether the slot table may have the version at pos
// when the daemon restarts in state st. Anything else means the table
// lost it (or holds it where this deployment never put it), and the
// deployment fails.
func slotExpected(st State, held bool, pos SlotPosition) bool {
	switch st {
	case Downloading, Verifying, RollingBack:
		return true
	case Verified:
		return pos == SlotNone || pos == SlotCandidate
	case Staged, Trial:
		return pos == SlotCandidate
	case Promoting:
		return pos == SlotCandidate || (!held && pos != SlotNone)
	case Promoted:
		return pos == SlotActive
	case Committing:
		return pos == SlotActive || pos == SlotCommitted
	}
	return false
}

// candidateLoaded says whether the daemon had the candidate loaded in the
// current state, so that a crash may be its fault.
func (d *Deployment) candidateLoaded() bool {
	switch d.s.State {
	case Staged, Trial, Promoted:
		return true
	case Promoting:
		return !d.s.Held
	}
	return false
}

// blameCrashes ends a deployment whose candidate was loaded through more
// than MaxCrashes crashes: quarantined, and rolled back if it served.
func (d *Deployment) blameCrashes(now time.Time, slot SlotPosition) {
	reason := fmt.Sprintf("the daemon crashed %d times while the candidate was loaded, at most %d allowed", d.s.Crashes, d.cfg.MaxCrashes)
	switch {
	case d.s.State == Staged || d.s.State == Trial:
		d.finish(now, TrialFailed, reason, true)
	case d.s.State == Promoting && slot == SlotCandidate:
		d.finish(now, Failed, reason, true)
	default: // Promoting after the slot switch, Promoted
		d.rollback(now, reason)
	}
}

// tidy repeats the cleanup of a deployment that was over before the
// restart, in case the daemon stopped before doing it: drop the download,
// and the candidate slot if it still holds the version.
func (d *Deployment) tidy(slot SlotPosition) {
	if d.s.State == Committed || d.s.State == RolledBack {
		return
	}
	d.emit(DropDownload{})
	if slot == SlotCandidate {
		d.drop(d.s.Quarantine, d.s.Quarantine != "")
	}
}
