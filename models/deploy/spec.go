package deploy

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Spec is what a deployment installs and how, as the fleet's signed
// model-deploy command asked: one bundle for one role.
type Spec struct {
	// ID names the deployment in reports (the rollout's or the command's
	// id); optional.
	ID string `json:"id,omitempty"`
	// Role is the slot role the bundle is for: primary, shadow or
	// degraded.
	Role string `json:"role"`
	// Name and Version are the bundle manifest's.
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	// Hash is the bundle's identity (bundle.Manifest.Hash): 64 lowercase
	// hex digits. The download is pinned to it.
	Hash string `json:"hash"`
	// Issued is when the fleet issued the command. Of two deployments for
	// a role, the one issued later is the newer.
	Issued time.Time `json:"issued"`
	// ParkedOnly makes the promotion wait for the vehicle to park.
	ParkedOnly bool `json:"parked_only,omitempty"`
	// SkipTrial promotes without a trial (the demo's slow model, promoted
	// with the trial gate disabled so that the health gate rolls it back).
	SkipTrial bool `json:"skip_trial,omitempty"`
	// ForceQuarantined installs the version even if the slot table
	// quarantined it (a signed command's explicit override).
	ForceQuarantined bool `json:"force_quarantined,omitempty"`
}

// Validate checks the spec's fields; the error names the first bad one.
func (s Spec) Validate() error {
	if len(s.ID) > 128 {
		return fmt.Errorf("spec: id: want at most 128 characters, got %d", len(s.ID))
	}
	switch s.Role {
	case "primary", "shadow", "degraded":
	default:
		return fmt.Errorf("spec: role %q: want primary, shadow or degraded", s.Role)
	}
	if s.Name == "" || len(s.Name) > 128 {
		return fmt.Errorf("spec: name %q: want 1 to 128 characters", s.Name)
	}
	if s.Version == 0 {
		return errors.New("spec: version: want at least 1")
	}
	if !isHex64(s.Hash) {
		return fmt.Errorf("spec: hash %q: want 64 lowercase hex digits (the bundle's hash)", s.Hash)
	}
	if s.Issued.IsZero() {
		return errors.New("spec: issued: missing")
	}
	return nil
}

// String is "pilot v3 (primary)".
func (s Spec) String() string { return fmt.Sprintf("%s v%d (%s)", s.Name, s.Version, s.Role) }

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Tolerance is how far a candidate's output element a may be from the live
// model's p during a trial: |a-p| <= Abs + Rel*|p|. The trial runner
// compares; the deployment only chooses the tolerance (the manifest's,
// else Config.Tolerance) and hands it over in StartTrial. It has the
// fields of bundle.Tolerance, which the shell converts.
type Tolerance struct {
	Abs float64 `json:"abs"`
	Rel float64 `json:"rel"`
}

// Validate wants both bounds finite and not negative, as the manifest
// does (both 0 asks for equal outputs).
func (t Tolerance) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"abs", t.Abs}, {"rel", t.Rel}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("tolerance %s: want a finite number at least 0, got %v", f.name, f.v)
		}
	}
	return nil
}

func (t Tolerance) String() string { return fmt.Sprintf("abs %g rel %g", t.Abs, t.Rel) }
