package deploywire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-av/vigil/sync/batch"
)

// ReportVersion is the version of the report's JSON form.
const ReportVersion = 1

// MaxReport bounds an encoded report; DecodeReport refuses more.
const MaxReport = 4 << 10

// MaxReason bounds a report's reason, in bytes.
const MaxReason = 1024

// ReportFilter matches every vehicle's deploy report topic.
const ReportFilter = "vigil/v1/+/deploy"

// ReportTopic is where vehicle publishes its deploy report, retained.
func ReportTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/deploy" }

// VehicleFromReportTopic returns <vehicle> of vigil/v1/<vehicle>/deploy.
func VehicleFromReportTopic(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, "vigil/v1/")
	if !ok {
		return "", false
	}
	v, ok := strings.CutSuffix(rest, "/deploy")
	if !ok || !ValidVehicle(v) {
		return "", false
	}
	return v, true
}

// ValidVehicle reports whether id can name a vehicle: one topic level of
// letters, digits, '-', '_' and '.' (at most 64, not starting with '.'),
// other than "all" and "fleet", which name the whole fleet. It is the
// command channel's rule (cmdlink.ValidVehicle).
func ValidVehicle(id string) bool {
	return batch.ValidName(id) && id != "all" && id != "fleet"
}

// State is a deployment's state on the vehicle: the names of the
// lifecycle's states (models/deploy's State.String), so that the vehicle
// reports its own state as it is.
type State string

// The states in progress, in lifecycle order.
const (
	Downloading State = "downloading"
	Verifying   State = "verifying"
	Verified    State = "verified"
	Staged      State = "staged"
	Trial       State = "trial"
	Promoting   State = "promoting"
	Promoted    State = "promoted"
	Committing  State = "committing"
	RollingBack State = "rolling_back"
)

// The outcomes: committed, the one success, and the failures.
const (
	Committed   State = "committed"
	RolledBack  State = "rolled_back"
	TrialFailed State = "trial_failed"
	Refused     State = "refused"
	FailedState State = "failed"
	TimedOut    State = "timed_out"
	// Aborted and Replaced end a deployment before its model served: an
	// operator aborted it on the vehicle, or a newer deployment for the
	// role took its place. The bundle does not run there, so a rollout
	// counts them as failures too.
	Aborted  State = "aborted"
	Replaced State = "replaced"
)

// States lists every state: those in progress in lifecycle order, then
// the outcomes.
var States = []State{Downloading, Verifying, Verified, Staged, Trial, Promoting, Promoted, Committing, RollingBack,
	Committed, RolledBack, TrialFailed, Refused, FailedState, TimedOut, Aborted, Replaced}

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	for _, x := range States {
		if s == x {
			return true
		}
	}
	return false
}

// Failed reports whether s ends a deployment without the bundle in
// service: every outcome but committed.
func (s State) Failed() bool {
	switch s {
	case RolledBack, TrialFailed, Refused, FailedState, TimedOut, Aborted, Replaced:
		return true
	}
	return false
}

// Terminal reports whether s ends a deployment: committed or Failed.
func (s State) Terminal() bool { return s == Committed || s.Failed() }

// Roles are the roles a bundle may fill (models/bundle's Roles, which a
// test keeps equal).
var Roles = []string{"primary", "shadow", "degraded"}

// ValidRole reports whether r is one of Roles.
func ValidRole(r string) bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// ValidHash reports whether h is a bundle hash: 64 lower-case hex digits
// (models/bundle's Manifest.Hash).
func ValidHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Report is a vehicle's latest word on its deployment of one bundle to
// one role.
type Report struct {
	Vehicle    string
	BundleHash string
	Role       string
	State      State
	// Reason says why, for the failed states; free text, at most
	// MaxReason bytes of UTF-8.
	Reason string
	// Deployment is the correlation id of the model-deploy command that
	// started the deployment; empty when the vehicle started it itself.
	Deployment string
	// Updated is when the vehicle entered State, by its own clock (kept
	// to the millisecond).
	Updated time.Time
}

type reportJSON struct {
	V          int    `json:"v"`
	Vehicle    string `json:"vehicle"`
	BundleHash string `json:"bundle_hash"`
	Role       string `json:"role"`
	State      State  `json:"state"`
	Reason     string `json:"reason,omitempty"`
	Deployment string `json:"deployment,omitempty"`
	UpdatedMs  int64  `json:"updated_ms"`
}

// ErrBadReport is what Encode and DecodeReport wrap when a report breaks
// a rule.
var ErrBadReport = errors.New("deploywire: bad deploy report")

// Check says which rule r breaks, if any.
func (r Report) Check() error {
	switch {
	case !ValidVehicle(r.Vehicle):
		return fmt.Errorf("%w: vehicle %q is not a vehicle id", ErrBadReport, r.Vehicle)
	case !ValidHash(r.BundleHash):
		return fmt.Errorf("%w: bundle_hash %q is not 64 lower-case hex digits", ErrBadReport, r.BundleHash)
	case !ValidRole(r.Role):
		return fmt.Errorf("%w: role %q: want one of %s", ErrBadReport, r.Role, strings.Join(Roles, ", "))
	case !r.State.Valid():
		return fmt.Errorf("%w: state %q is not a deployment state", ErrBadReport, r.State)
	case len(r.Reason) > MaxReason || !utf8.ValidString(r.Reason):
		return fmt.Errorf("%w: reason is %d bytes or not UTF-8 (at most %d)", ErrBadReport, len(r.Reason), MaxReason)
	case len(r.Deployment) > 256:
		return fmt.Errorf("%w: deployment id is %d bytes (at most 256)", ErrBadReport, len(r.Deployment))
	case r.Updated.IsZero() || r.Updated.UnixMilli() <= 0:
		return fmt.Errorf("%w: no updated time", ErrBadReport)
	}
	return nil
}

// Encode returns the report's JSON form, after Check.
func (r Report) Encode() ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	return json.Marshal(reportJSON{V: ReportVersion, Vehicle: r.Vehicle, BundleHash: r.BundleHash, Role: r.Role,
		State: r.State, Reason: r.Reason, Deployment: r.Deployment, UpdatedMs: r.Updated.UnixMilli()})
}

// DecodeReport parses a report and checks it. Members it does not know
// are ignored, so that a later version may add some; a version other
// than ReportVersion is refused.
func DecodeReport(raw []byte) (Report, error) {
	if len(raw) > MaxReport {
		return Report{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadReport, len(raw), MaxReport)
	}
	var w reportJSON
	if err := json.Unmarshal(raw, &w); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrBadReport, err)
	}
	if w.V != ReportVersion {
		return Report{}, fmt.Errorf("%w: version %d, want %d", ErrBadReport, w.V, ReportVersion)
	}
	r := Report{Vehicle: w.Vehicle, BundleHash: w.BundleHash, Role: w.Role, State: w.State, Reason: w.Reason,
		Deployment: w.Deployment}
	if w.UpdatedMs > 0 {
		r.Updated = time.UnixMilli(w.UpdatedMs).UTC()
	}
	if err := r.Check(); err != nil {
		return Report{}, err
	}
	return r, nil
}
