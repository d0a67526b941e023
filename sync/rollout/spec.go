package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// Percent is a share in hundredths of a percent: 550 is 5.5 %.
type Percent int

// Whole is 100 %.
const Whole Percent = 10000

// ParsePercent reads a percentage: a number from 0 to 100 with at most
// two decimals, with or without a trailing '%' ("5", "5%", "0.5%").
func ParsePercent(s string) (Percent, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	whole, frac, hasFrac := strings.Cut(t, ".")
	if whole == "" || !digits(whole) || hasFrac && (frac == "" || len(frac) > 2 || !digits(frac)) || len(whole) > 3 {
		return 0, fmt.Errorf("%q is not a percentage: want a number from 0 to 100 with at most two decimals, such as 5%% or 0.5%%", s)
	}
	w, _ := strconv.Atoi(whole)
	f := 0
	if hasFrac {
		f, _ = strconv.Atoi((frac + "0")[:2])
	}
	p := Percent(w*100 + f)
	if p > Whole {
		return 0, fmt.Errorf("%q is more than 100%%", s)
	}
	return p, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// String writes p as ParsePercent reads it: "5%", "0.5%", "12.25%".
func (p Percent) String() string {
	s := strconv.Itoa(int(p) / 100)
	if f := int(p) % 100; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%02d", f), "0")
	}
	return s + "%"
}

// ParseWaves reads a comma-separated list of cumulative percentages, a
// '%' after any or all of them ("1,10,50,100%"); Spec.Validate checks
// their order.
func ParseWaves(s string) ([]Percent, error) {
	var out []Percent
	for _, f := range strings.Split(s, ",") {
		p, err := ParsePercent(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Bundle names the bundle a rollout deploys.
type Bundle struct {
	// Hash is the manifest's hash (models/bundle Manifest.Hash): what the
	// vehicles fetch and report.
	Hash    string `json:"hash"`
	Name    string `json:"name"`
	Version uint64 `json:"version"`
}

// Defaults of Spec's durations.
const (
	DefaultResendAfter    = time.Minute
	DefaultVehicleTimeout = 4 * time.Hour
)

// Spec is what an operator asks of a rollout.
type Spec struct {
	// ID names the rollout: letters, digits, '.', '_', '-', at most 64.
	ID     string `json:"id"`
	Bundle Bundle `json:"bundle"`
	// Role is the role the bundle is deployed to.
	Role string `json:"role"`
	// Vehicles in the order the waves take them: the first wave is the
	// first of them.
	Vehicles []string `json:"vehicles"`
	// Waves are cumulative shares of Vehicles, ascending, the last 100 %.
	Waves []Percent `json:"waves"`
	// MaxFailures is the breaker's threshold: the rollout halts when
	// more than this share of the vehicles with an outcome failed ...
	MaxFailures Percent `json:"max_failures"`
	// ... once at least MinVehicles have an outcome (at least 1).
	MinVehicles int `json:"min_vehicles"`
	// The deployment's options, passed to every vehicle.
	ParkedOnly bool `json:"parked_only,omitempty"`
	SkipTrial  bool `json:"skip_trial,omitempty"`
	// ResendAfter is how long a vehicle that has neither accepted the
	// command nor reported on it waits before it is sent again; 0 means
	// DefaultResendAfter.
	ResendAfter time.Duration `json:"resend_after_ns"`
	// VehicleTimeout is how long after its first command a vehicle may
	// take to commit or fail; past it, it counts as timed out (a
	// failure). 0 means DefaultVehicleTimeout.
	VehicleTimeout time.Duration `json:"vehicle_timeout_ns"`
}

// SpecError is Validate's error: the field at fault (as the JSON names
// it) and what is wrong with it.
type SpecError struct {
	Field, Problem string
}

func (e *SpecError) Error() string { return "rollout: " + e.Field + ": " + e.Problem }

func specErr(field, format string, a ...any) error {
	return &SpecError{Field: field, Problem: fmt.Sprintf(format, a...)}
}

// Validate fills in the default durations and says which field is
// wrong, if any.
func (s *Spec) Validate() error {
	if s.ResendAfter == 0 {
		s.ResendAfter = DefaultResendAfter
	}
	if s.VehicleTimeout == 0 {
		s.VehicleTimeout = DefaultVehicleTimeout
	}
	switch {
	case !deploywire.ValidRolloutID(s.ID):
		return specErr("id", "%q: want 1 to 64 of letters, digits, '.', '_', '-', not starting with '.'", s.ID)
	case !deploywire.ValidHash(s.Bundle.Hash):
		return specErr("bundle.hash", "%q is not 64 lower-case hex digits", s.Bundle.Hash)
	case !deploywire.ValidRole(s.Role):
		return specErr("role", "%q: want one of %s", s.Role, strings.Join(deploywire.Roles, ", "))
	case s.MaxFailures < 0 || s.MaxFailures > Whole:
		return specErr("max_failures", "%v: want 0%% to 100%%", s.MaxFailures)
	case s.ResendAfter < 0 || s.VehicleTimeout < 0:
		return specErr("resend_after_ns", "durations must not be negative")
	case s.VehicleTimeout <= s.ResendAfter:
		return specErr("vehicle_timeout_ns", "%v is not longer than resend_after %v: a vehicle would time out before it is sent the command again", s.VehicleTimeout, s.ResendAfter)
	}
	// The bundle's name and version as model-deploy carries them.
	if _, err := (deploywire.DeployArgs{BundleHash: s.Bundle.Hash, Name: s.Bundle.Name, Version: s.Bundle.Version, Role: s.Role, Rollout: s.ID}).Args(); err != nil {
		return specErr("bundle", "%v", strings.TrimPrefix(err.Error(), deploywire.ErrBadArgs.Error()+": "))
	}
	if err := s.validateVehicles(); err != nil {
		return err
	}
	if err := s.validateWaves(); err != nil {
		return err
	}
	if s.MinVehicles < 1 || s.MinVehicles > len(s.Vehicles) {
		return specErr("min_vehicles", "%d: want 1 to the number of vehicles (%d); more would keep the breaker from ever judging", s.MinVehicles, len(s.Vehicles))
	}
	return nil
}

func (s *Spec) validateVehicles() error {
	if len(s.Vehicles) == 0 {
		return specErr("vehicles", "none given")
	}
	seen := make(map[string]bool, len(s.Vehicles))
	for i, v := range s.Vehicles {
		if !deploywire.ValidVehicle(v) {
			return specErr("vehicles", "#%d %q is not a vehicle id (letters, digits, '-', '_', '.'; not all or fleet)", i+1, v)
		}
		if seen[v] {
			return specErr("vehicles", "%q is listed twice", v)
		}
		seen[v] = true
	}
	return nil
}

func (s *Spec) validateWaves() error {
	if len(s.Waves) == 0 {
		return specErr("waves", "none given: want cumulative percentages such as 1,10,50,100%%")
	}
	for i, p := range s.Waves {
		if p <= 0 {
			return specErr("waves", "wave %d is %v: each wave must add vehicles", i+1, p)
		}
		if i > 0 && p <= s.Waves[i-1] {
			return specErr("waves", "wave %d (%v) is not above wave %d (%v): the percentages are cumulative and must rise", i+1, p, i, s.Waves[i-1])
		}
	}
	if last := s.Waves[len(s.Waves)-1]; last != Whole {
		return specErr("waves", "the last wave is %v: it must be 100%% so that every vehicle is reached", last)
	}
	return nil
}

// planWaves splits vehicles into waves: wave i reaches
// ceil(waves[i] x n) of the n vehicles, cumulatively, and at least one
// more than wave i-1. A wave left with no vehicle (when there are fewer
// vehicles than waves) is dropped, so the plan may have fewer waves than
// asked for; the last one always reaches every vehicle.
func planWaves(waves []Percent, vehicles []string) []Wave {
	var out []Wave
	n, prev := len(vehicles), 0
	for _, p := range waves {
		c := (int(p)*n + int(Whole) - 1) / int(Whole)
		c = min(max(c, prev+1), n)
		if c == prev {
			continue
		}
		out = append(out, Wave{Percent: p, Vehicles: vehicles[prev:c]})
		prev = c
	}
	return out
}
