package deploy

import (
	"fmt"
	"time"
)

// Event is an input to Deployment.Step: an answer to an action, an
// observation, an operator command, or the passing of time.
type Event interface{ event() }

// DownloadProgress reports how much of the bundle is on the vehicle.
type DownloadProgress struct {
	Have, Total int64 // bytes; 0 <= Have <= Total
}

// DownloadDone: the whole bundle is on the vehicle, pinned to Spec.Hash.
type DownloadDone struct{}

// DownloadFailed: the download cannot go on (the fleet side has no such
// bundle, the disk is full, preflight refused it).
type DownloadFailed struct{ Reason string }

// VerifyDone: the bundle passed bundle.Verify. Tolerance is the
// manifest's, nil when it has none.
type VerifyDone struct{ Tolerance *Tolerance }

// VerifyRefused: bundle.Verify refused the bundle; Reason says why.
type VerifyRefused struct{ Reason string }

// InstallDone: the bundle is the role's candidate slot (slot.Install).
type InstallDone struct{}

// InstallFailed: the install did not happen. Refused marks a refusal of
// the slot store (below the anti-rollback floor, quarantined) rather than
// a failure (a hash mismatch, a full disk).
type InstallFailed struct {
	Reason  string
	Refused bool
}

// TrialStarted: the trial runner loaded the candidate and samples will
// come.
type TrialStarted struct{}

// TrialStartFailed: the trial runner could not load the candidate.
type TrialStartFailed struct{ Reason string }

// Outcome is how the candidate's run on one sampled request went.
type Outcome uint8

const (
	// Answered: the candidate answered with a valid output, which was
	// compared with the live model's.
	Answered Outcome = iota + 1
	// RunError: the run failed with an error.
	RunError
	// Crashed: the candidate's process or session crashed.
	Crashed
	// Hung: no answer within the runner's limit (the run was abandoned).
	Hung
	// InvalidOutput: NaN, ±Inf or out of the declared range.
	InvalidOutput
)

var outcomeNames = [...]string{"", "answered", "error", "crashed", "hung", "invalid output"}

func (o Outcome) String() string {
	if o >= Answered && o <= InvalidOutput {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// TrialSample is one request run by both the live model and the candidate
// during a trial.
type TrialSample struct {
	Outcome Outcome
	// Within: the outputs were within the tolerance (Answered only).
	Within bool
	// Latency is the candidate's, from its start to its answer; Budget is
	// the request's deadline budget (Answered only, Budget positive).
	Latency, Budget time.Duration
}

// PromoteDone: the new model is loaded, warmed and serves, and the slot
// table has it active (slot.Promote).
type PromoteDone struct{}

// PromoteFailed: the promotion failed. Swapped says whether the new model
// already served or the slot table already had it active; then it must be
// rolled back, otherwise the old model never stopped serving.
type PromoteFailed struct {
	Reason  string
	Swapped bool
}

// Served reports requests the new model served since the last report
// (health gate). Requests is at least 1.
type Served struct{ Requests int }

// WatchdogFailed: the watchdog failed the role's backend while the new
// model served it.
type WatchdogFailed struct{ Reason string }

// WatchdogSuspect: the watchdog marked the role's backend suspect while
// the new model served it; the health gate starts over.
type WatchdogSuspect struct{ Reason string }

// CommitDone: slot.Commit succeeded; the anti-rollback floor is raised.
type CommitDone struct{}

// CommitFailed: slot.Commit failed.
type CommitFailed struct{ Reason string }

// RollbackDone: the previous model serves again and the new one is
// quarantined.
type RollbackDone struct{}

// RollbackFailed: the rollback did not happen.
type RollbackFailed struct{ Reason string }

// CommandOp is an operator command.
type CommandOp uint8

const (
	// CmdAbort stops a deployment before promotion; the candidate is
	// dropped, not quarantined.
	CmdAbort CommandOp = iota + 1
	// CmdRollback rolls back a promoted deployment; the new model is
	// quarantined.
	CmdRollback
)

func (op CommandOp) String() string {
	switch op {
	case CmdAbort:
		return "abort"
	case CmdRollback:
		return "rollback"
	}
	return fmt.Sprintf("command(%d)", uint8(op))
}

// Command is an operator command, from the local socket or a verified
// fleet command; the command layer has already applied its motion rules
// (sync/command.Allowed).
type Command struct {
	Op     CommandOp
	Reason string // optional, e.g. "rollout 17 aborted"
}

// Newer offers a newer deployment for the same role. Accepted, this one
// ends (replaced, unless it was already over) and StartNewer asks the
// shell to start Spec.
type Newer struct{ Spec Spec }

// Motion is the supervisor's latest word on whether the vehicle is
// parked. Until the first one, and after a restart, the vehicle counts as
// moving.
type Motion struct{ Parked bool }

// SlotPosition is where the slot table has the deployment's version
// (matched by bundle hash).
type SlotPosition uint8

const (
	// SlotNone: not in the table (never installed, or dropped).
	SlotNone SlotPosition = iota
	// SlotCandidate: the role's candidate (staged or trial).
	SlotCandidate
	// SlotActive: the role's active slot, promoted, not committed.
	SlotActive
	// SlotCommitted: the role's active slot, committed.
	SlotCommitted
)

var slotNames = [...]string{"none", "candidate", "active", "committed"}

func (p SlotPosition) String() string {
	if int(p) < len(slotNames) {
		return slotNames[p]
	}
	return fmt.Sprintf("slot(%d)", uint8(p))
}

// Restarted is the first event of a deployment brought back by Restore:
// the daemon started again. Slot is where the slot table has the
// version now; Clean says the daemon had shut down in order (and
// persisted that), not crashed.
type Restarted struct {
	Slot  SlotPosition
	Clean bool
}

// Tick lets time pass: timeouts, the trial's minimum duration and the
// health gate's duration are checked. Step a Tick every few seconds.
type Tick struct{}

func (DownloadProgress) event() {}
func (DownloadDone) event()     {}
func (DownloadFailed) event()   {}
func (VerifyDone) event()       {}
func (VerifyRefused) event()    {}
func (InstallDone) event()      {}
func (InstallFailed) event()    {}
func (TrialStarted) event()     {}
func (TrialStartFailed) event() {}
func (TrialSample) event()      {}
func (PromoteDone) event()      {}
func (PromoteFailed) event()    {}
func (Served) event()           {}
func (WatchdogFailed) event()   {}
func (WatchdogSuspect) event()  {}
func (CommitDone) event()       {}
func (CommitFailed) event()     {}
func (RollbackDone) event()     {}
func (RollbackFailed) event()   {}
func (Command) event()          {}
func (Newer) event()            {}
func (Motion) event()           {}
func (Restarted) event()        {}
func (Tick) event()             {}
