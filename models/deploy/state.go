package deploy

import "fmt"

// State is where a deployment stands. The first nine are live: the
// deployment waits in each for one answer from the shell (or for time to
// pass), under a timeout. The other eight are terminal outcomes; a
// deployment reaches exactly one of them and stays there.
type State uint8

const (
	// Downloading: the bundle is being fetched (action Download).
	Downloading State = iota + 1
	// Verifying: the bundle is complete and being verified (Verify).
	Verifying
	// Verified: the bundle passed verification and is being installed
	// into the role's candidate slot (Install).
	Verified
	// Staged: the candidate is installed; the trial is starting
	// (StartTrial: the runner loads it).
	Staged
	// Trial: the candidate runs beside the live model on a sample of
	// requests; its answers are compared, never served.
	Trial
	// Promoting: the candidate is loaded, warmed and swapped in (Promote),
	// or, parked-only, waits for the vehicle to park first.
	Promoting
	// Promoted: the new model serves, under the health gate.
	Promoted
	// Committing: the health gate passed; the slot is being committed,
	// raising the anti-rollback floor (Commit).
	Committing
	// RollingBack: the previous model is being restored and the new one
	// quarantined (Rollback).
	RollingBack

	// Committed: the new model serves for good.
	Committed
	// RolledBack: the new model served, failed (or was rolled back by the
	// operator), and the previous one serves again.
	RolledBack
	// TrialFailed: the candidate failed its trial, or did not start it;
	// it is quarantined and never served.
	TrialFailed
	// Refused: verification or the slot store refused the bundle; nothing
	// was installed.
	Refused
	// Failed: a step failed (download, install, promotion before the
	// swap, commit, rollback) or the slot table lost the version.
	Failed
	// TimedOut: a state's timeout elapsed where that ends the deployment.
	TimedOut
	// Aborted: an operator aborted it before promotion.
	Aborted
	// Replaced: a newer deployment for the role took its place before
	// promotion.
	Replaced

	numStates = iota + 1
)

var stateNames = [numStates]string{
	"none", "downloading", "verifying", "verified", "staged", "trial",
	"promoting", "promoted", "committing", "rolling_back", "committed",
	"rolled_back", "trial_failed", "refused", "failed", "timed_out",
	"aborted", "replaced",
}

// String returns the state's snake_case name, such as "rolling_back"; the
// zero State is "none".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState is the inverse of State.String for the seventeen states.
func ParseState(v string) (State, error) {
	for s := Downloading; s < numStates; s++ {
		if stateNames[s] == v {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown deployment state %q", v)
}

// Valid reports whether s is one of the seventeen states.
func (s State) Valid() bool { return s >= Downloading && s < numStates }

// Terminal reports whether s is an outcome.
func (s State) Terminal() bool { return s >= Committed && s < numStates }

// MarshalText writes the state's name, so JSON carries "trial", not 5.
func (s State) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("deploy: cannot encode %v", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
