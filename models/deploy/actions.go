package deploy

import (
	"fmt"
	"time"
)

// Ready is what one Step decided.
type Ready struct {
	// Actions are for the shell to execute, in order, after persisting
	// (see Changed). Actions that ask for an answer name it.
	Actions []Action
	// Changed: the persisted state (Save) changed. Write it, atomically,
	// before executing Actions: after a crash, Restarted asks again for
	// whatever was not done.
	Changed bool
	// Rejected, when not nil, says why the event was refused (wrapping one
	// of the Err sentinels); the step then changed nothing and has no
	// actions.
	Rejected error
}

// Action is an output of Step for the shell to execute.
type Action interface {
	action()
	String() string
}

// Download starts the download of the bundle Spec names, pinned to
// Spec.Hash, or resumes it. Answer: DownloadProgress, then DownloadDone or
// DownloadFailed.
type Download struct{}

// DropDownload stops the download if it runs and deletes what was
// fetched. No answer.
type DropDownload struct{}

// Verify verifies the downloaded bundle (bundle.Verify). Answer:
// VerifyDone or VerifyRefused.
type Verify struct{}

// Install installs the verified bundle as the role's candidate slot
// (slot.Install). Answer: InstallDone or InstallFailed.
type Install struct{}

// StartTrial marks the candidate slot trial (slot.StartTrial) and starts
// the trial runner on it. Answer: TrialStarted or TrialStartFailed, then a
// TrialSample per compared request.
type StartTrial struct {
	SampleRate float64   // Config.TrialSampleRate
	CostCap    float64   // Config.TrialCostCap
	Tolerance  Tolerance // the manifest's, else Config.Tolerance
}

// StopTrial stops the trial runner and unloads the candidate. No answer.
type StopTrial struct{}

// Promote loads and warms the candidate, makes it the active slot
// (slot.Promote) and swaps it in, in that order, so that the old model
// serves until the new one is ready. Answer: PromoteDone or PromoteFailed.
type Promote struct{}

// Commit commits the active slot (slot.Commit), raising the
// anti-rollback floor. Answer: CommitDone or CommitFailed.
type Commit struct{}

// Rollback restores the model that served before this deployment and
// quarantines this one with Reason: slot.Rollback when the slot table has
// this version active, slot.Reject when it is still the candidate; then
// the restored model is loaded, warmed and swapped in. Answer:
// RollbackDone or RollbackFailed.
type Rollback struct{ Reason string }

// Discard drops the candidate slot (slot.Discard) if it holds this
// version, without quarantine. No answer.
type Discard struct{}

// Reject drops the candidate slot if it holds this version and
// quarantines the version with Reason (slot.Reject). No answer.
type Reject struct{ Reason string }

// StartNewer asks the shell to start Spec (New) once this step's other
// actions are done; it follows an accepted Newer.
type StartNewer struct{ Spec Spec }

// Report publishes a state change (status, events, telemetry).
type Report struct{ Transition }

// Transition is one change of state, or, with From equal to To, a new
// start within a state (a restart, a parked promotion starting, a health
// gate starting over).
type Transition struct {
	From, To State
	Reason   string
	At       time.Time
}

func (t Transition) String() string { return fmt.Sprintf("%s->%s: %s", t.From, t.To, t.Reason) }

func (Download) action()     {}
func (DropDownload) action() {}
func (Verify) action()       {}
func (Install) action()      {}
func (StartTrial) action()   {}
func (StopTrial) action()    {}
func (Promote) action()      {}
func (Commit) action()       {}
func (Rollback) action()     {}
func (Discard) action()      {}
func (Reject) action()       {}
func (StartNewer) action()   {}
func (Report) action()       {}

func (Download) String() string     { return "download" }
func (DropDownload) String() string { return "drop-download" }
func (Verify) String() string       { return "verify" }
func (Install) String() string      { return "install" }
func (a StartTrial) String() string {
	return fmt.Sprintf("start-trial rate=%g cap=%g tolerance=%g/%g", a.SampleRate, a.CostCap, a.Tolerance.Abs, a.Tolerance.Rel)
}
func (StopTrial) String() string    { return "stop-trial" }
func (Promote) String() string      { return "promote" }
func (Commit) String() string       { return "commit" }
func (a Rollback) String() string   { return "rollback: " + a.Reason }
func (Discard) String() string      { return "discard" }
func (a Reject) String() string     { return "reject: " + a.Reason }
func (a StartNewer) String() string { return "start-newer " + a.Spec.String() }
func (a Report) String() string     { return "report " + a.Transition.String() }
