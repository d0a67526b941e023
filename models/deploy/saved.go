package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SavedFormat is the version of Saved's JSON encoding.
const SavedFormat = 1

// Saved is a deployment's persisted state: everything Restore needs to
// bring it back after the daemon restarts. The shell writes Encode's bytes
// atomically (write a temporary file, fsync, rename, fsync the directory)
// whenever Ready.Changed, before executing the step's actions. Its JSON:
//
//	{"format":1,
//	 "spec":{"role":"primary","name":"pilot","version":3,"hash":"…","issued":"…"},
//	 "state":"trial","reason":"trial started","since":"…","started":"…",
//	 "tolerance":{"abs":0.05,"rel":0},
//	 "trial":{"started":"…","compared":120,"divergent":0,"slow":1,"errors":0},
//	 "gate":{"requests":0}}
//
// Timers are not saved: after a restart every live state's timeout counts
// from the restart, so time the daemon was down does not count.
type Saved struct {
	Format int  `json:"format"`
	Spec   Spec `json:"spec"`
	// State, the Reason of its last Report, and Since, when it was
	// entered or last started over.
	State  State     `json:"state"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	// Started is when the deployment began (New).
	Started time.Time `json:"started"`
	// Held: a parked-only promotion waits for the vehicle to park
	// (Promoting only).
	Held bool `json:"held,omitempty"`
	// Tolerance is the trial's, chosen when the bundle was verified.
	Tolerance Tolerance   `json:"tolerance"`
	Trial     TrialCounts `json:"trial"`
	Gate      GateCounts  `json:"gate"`
	// Crashes counts unclean restarts while the candidate was loaded.
	Crashes int `json:"crashes,omitempty"`
	// Quarantine is the reason the version was rejected or is being
	// rolled back with; empty if neither.
	Quarantine string `json:"quarantine,omitempty"`
}

// TrialCounts is the trial so far. Compared counts answered samples;
// Divergent and Slow are among them. Errors (with the LastError's kind)
// survive a restart, when the rest starts over.
type TrialCounts struct {
	Started   time.Time `json:"started,omitzero"`
	Compared  int       `json:"compared"`
	Divergent int       `json:"divergent"`
	Slow      int       `json:"slow"`
	Errors    int       `json:"errors"`
	LastError string    `json:"last_error,omitempty"`
	// Passed: the trial's verdict was a pass.
	Passed bool `json:"passed,omitempty"`
}

// GateCounts is the health gate so far, from Started (the promotion, or
// the last time the gate started over).
type GateCounts struct {
	Started  time.Time `json:"started,omitzero"`
	Requests int       `json:"requests"`
	Suspects int       `json:"suspects,omitempty"`
	// Passed: the gate's requests and duration were reached.
	Passed bool `json:"passed,omitempty"`
}

// Encode returns s as JSON, after checking it.
func (s Saved) Encode() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(s, "", "  ")
}

// DecodeSaved parses and checks what Encode wrote. Unknown members are
// refused: a state written by a newer daemon is not half understood.
func DecodeSaved(b []byte) (Saved, error) {
	var s Saved
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Saved{}, fmt.Errorf("deploy state: %w", err)
	}
	if dec.More() {
		return Saved{}, errors.New("deploy state: data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return Saved{}, err
	}
	return s, nil
}

// Validate checks a saved state field by field, and the promises the
// machine keeps: nothing promotes without a passed trial (unless the spec
// skips it), nothing commits without a passed health gate. The error
// names the field.
func (s Saved) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("deploy state: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if s.Format != SavedFormat {
		return bad("format", "%d, want %d", s.Format, SavedFormat)
	}
	if err := s.Spec.Validate(); err != nil {
		return fmt.Errorf("deploy state: %w", err)
	}
	if !s.State.Valid() {
		return bad("state", "%v is not a state", s.State)
	}
	if s.Since.IsZero() || s.Started.IsZero() {
		return bad("since/started", "missing")
	}
	if s.Held && s.State != Promoting {
		return bad("held", "only a promotion is held, state is %s", s.State)
	}
	if s.State > Verifying {
		if err := s.Tolerance.Validate(); err != nil {
			return bad("tolerance", "%v", err)
		}
	}
	t, g := s.Trial, s.Gate
	if t.Compared < 0 || t.Divergent < 0 || t.Slow < 0 || t.Errors < 0 || t.Divergent > t.Compared || t.Slow > t.Compared {
		return bad("trial", "counts %+v: want 0 <= divergent, slow <= compared and errors >= 0", t)
	}
	if g.Requests < 0 || g.Suspects < 0 || s.Crashes < 0 {
		return bad("gate/crashes", "negative count")
	}
	switch s.State {
	case Promoting, Promoted, Committing, Committed:
		if !t.Passed && !s.Spec.SkipTrial {
			return bad("trial.passed", "state %s without a passed trial", s.State)
		}
	}
	if (s.State == Committing || s.State == Committed) && !g.Passed {
		return bad("gate.passed", "state %s without a passed health gate", s.State)
	}
	if s.State == RollingBack && s.Quarantine == "" {
		return bad("quarantine", "rolling back without a reason")
	}
	return nil
}
