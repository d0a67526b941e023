package deploy

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Config holds the rules every deployment on the vehicle follows. Start
// from DefaultConfig, change what you need, and let New or Restore
// validate it.
type Config struct {
	// Timeouts bound every live state.
	Timeouts Timeouts

	// TrialMinRequests is how many compared requests (candidate answered)
	// a trial needs before its verdict.
	TrialMinRequests int
	// TrialMinDuration is the least time from the trial's start to its
	// verdict. Less than Timeouts.Trial.
	TrialMinDuration time.Duration
	// TrialSampleRate is the fraction of serving requests the trial runner
	// also gives the candidate, in (0, 1].
	TrialSampleRate float64
	// TrialCostCap is the largest fraction of wall time the candidate may
	// spend running, in (0, 1]; the runner skips samples beyond it, so the
	// ladder's deadlines do not move.
	TrialCostCap float64
	// Tolerance is how far the candidate's outputs may be from the live
	// model's when the bundle's manifest does not say.
	Tolerance Tolerance
	// TrialMaxErrors is how many candidate errors (run errors, crashes,
	// hangs, invalid outputs) a trial survives; one more fails it at once.
	TrialMaxErrors int
	// TrialMaxDivergence is the largest fraction of compared requests
	// whose outputs may be outside the tolerance, in [0, 1).
	TrialMaxDivergence float64
	// LatencyQuantile and LatencyFraction are the latency rule: the
	// LatencyQuantile (e.g. 0.99) of the candidate's latency, each latency
	// taken as a fraction of its request's deadline budget, is at most
	// LatencyFraction. Both in (0, 1].
	LatencyQuantile float64
	LatencyFraction float64

	// GateRequests and GateDuration are the health gate: a promoted model
	// commits once it served GateRequests requests and GateDuration passed
	// since its promotion (or since the gate last started over), without
	// the watchdog failing it. GateDuration is less than
	// Timeouts.Promoted.
	GateRequests int
	GateDuration time.Duration

	// MaxCrashes is how many unclean daemon restarts a deployment survives
	// while its candidate is loaded (staged, trial, promoting, promoted);
	// one more blames the candidate.
	MaxCrashes int

	// ParkedOnly makes every deployment wait for the vehicle to park
	// before promoting, as if its Spec asked for it.
	ParkedOnly bool
	// SkipTrial promotes every deployment without a trial, as if its Spec
	// asked for it.
	SkipTrial bool
}

// Timeouts bound the live states: each is the longest a deployment stays
// in its state (counted from entering it, or from the daemon's restart in
// it) before the state's timeout rule applies. All positive.
type Timeouts struct {
	Downloading time.Duration
	Verifying   time.Duration
	Verified    time.Duration // installing into the slot
	Staged      time.Duration // the trial runner loading the candidate
	Trial       time.Duration
	Promoting   time.Duration // load, warm and swap
	Promoted    time.Duration // the health gate
	Committing  time.Duration
	RollingBack time.Duration
	// Parked is how long a parked-only promotion waits for the vehicle
	// to park (in Promoting, before the promotion starts).
	Parked time.Duration
}

// For returns the timeout of a live state (Parked's for a held
// promotion); 0 for a terminal one.
func (t Timeouts) For(s State, held bool) time.Duration {
	switch s {
	case Downloading:
		return t.Downloading
	case Verifying:
		return t.Verifying
	case Verified:
		return t.Verified
	case Staged:
		return t.Staged
	case Trial:
		return t.Trial
	case Promoting:
		if held {
			return t.Parked
		}
		return t.Promoting
	case Promoted:
		return t.Promoted
	case Committing:
		return t.Committing
	case RollingBack:
		return t.RollingBack
	}
	return 0
}

// DefaultConfig returns the configuration used unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Timeouts: Timeouts{
			Downloading: 6 * time.Hour,
			Verifying:   10 * time.Minute,
			Verified:    10 * time.Minute,
			Staged:      5 * time.Minute,
			Trial:       2 * time.Hour,
			Promoting:   2 * time.Minute,
			Promoted:    2 * time.Hour,
			Committing:  2 * time.Minute,
			RollingBack: 2 * time.Minute,
			Parked:      24 * time.Hour,
		},
		TrialMinRequests:   500,
		TrialMinDuration:   10 * time.Minute,
		TrialSampleRate:    0.2,
		TrialCostCap:       0.25,
		Tolerance:          Tolerance{Abs: 0.05},
		TrialMaxErrors:     0,
		TrialMaxDivergence: 0.01,
		LatencyQuantile:    0.99,
		LatencyFraction:    0.5,
		GateRequests:       1000,
		GateDuration:       5 * time.Minute,
		MaxCrashes:         2,
	}
}

// FieldError is a problem with one field of a Config, named by the key
// Set takes for it (the key a configuration file writes).
type FieldError struct {
	Field   string // the field's key, e.g. "timeout_trial"
	Problem string
}

func (e *FieldError) Error() string {
	return "deploy config: " + e.Field + ": " + e.Problem
}

// Validate checks every field and returns all problems found, each a
// *FieldError naming its field, joined with errors.Join; nil if none.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	for _, t := range c.Timeouts.fields() {
		if *t.p <= 0 {
			bad(t.key, "must be positive, got %v", *t.p)
		}
	}
	if c.TrialMinRequests < 1 {
		bad("trial_min_requests", "must be at least 1, got %d", c.TrialMinRequests)
	}
	if c.TrialMinDuration < 0 || (c.Timeouts.Trial > 0 && c.TrialMinDuration >= c.Timeouts.Trial) {
		bad("trial_min_duration", "must be at least 0 and less than timeout_trial (%v), got %v", c.Timeouts.Trial, c.TrialMinDuration)
	}
	fraction := func(field string, v float64, zeroOK bool) {
		lo := "(0, 1]"
		ok := v > 0 && v <= 1
		if zeroOK {
			lo, ok = "[0, 1)", v >= 0 && v < 1
		}
		if !ok {
			bad(field, "must be in %s, got %v", lo, v)
		}
	}
	fraction("trial_sample_rate", c.TrialSampleRate, false)
	fraction("trial_cost_cap", c.TrialCostCap, false)
	if err := c.Tolerance.Validate(); err != nil {
		bad("tolerance_abs, tolerance_rel", "%v", err)
	}
	if c.TrialMaxErrors < 0 {
		bad("trial_max_errors", "must not be negative, got %d", c.TrialMaxErrors)
	}
	fraction("trial_max_divergence", c.TrialMaxDivergence, true)
	fraction("latency_quantile", c.LatencyQuantile, false)
	fraction("latency_fraction", c.LatencyFraction, false)
	if c.GateRequests < 1 {
		bad("gate_requests", "must be at least 1, got %d", c.GateRequests)
	}
	if c.GateDuration < 0 || (c.Timeouts.Promoted > 0 && c.GateDuration >= c.Timeouts.Promoted) {
		bad("gate_duration", "must be at least 0 and less than timeout_promoted (%v), got %v", c.Timeouts.Promoted, c.GateDuration)
	}
	if c.MaxCrashes < 0 {
		bad("max_crashes", "must not be negative, got %d", c.MaxCrashes)
	}
	return errors.Join(errs...)
}

type timeoutField struct {
	key string
	p   *time.Duration
}

// fields lists the timeouts with their configuration keys.
func (t *Timeouts) fields() []timeoutField {
	return []timeoutField{
		{"timeout_downloading", &t.Downloading},
		{"timeout_verifying", &t.Verifying},
		{"timeout_verified", &t.Verified},
		{"timeout_staged", &t.Staged},
		{"timeout_trial", &t.Trial},
		{"timeout_promoting", &t.Promoting},
		{"timeout_promoted", &t.Promoted},
		{"timeout_committing", &t.Committing},
		{"timeout_rolling_back", &t.RollingBack},
		{"timeout_parked", &t.Parked},
	}
}

// Set changes one field by its snake_case key, as a configuration file or
// a command line would name it: timeout_downloading, timeout_verifying,
// timeout_verified, timeout_staged, timeout_trial, timeout_promoting,
// timeout_promoted, timeout_committing, timeout_rolling_back,
// timeout_parked, trial_min_requests, trial_min_duration,
// trial_sample_rate, trial_cost_cap, tolerance_abs, tolerance_rel,
// trial_max_errors, trial_max_divergence, latency_quantile,
// latency_fraction, gate_requests, gate_duration, max_crashes,
// parked_only, skip_trial. Durations use Go syntax ("10m"). Set parses
// only; call Validate for the ranges.
func (c *Config) Set(key, value string) error {
	var err error
	dur := func(p *time.Duration) { *p, err = time.ParseDuration(value) }
	num := func(p *int) { *p, err = strconv.Atoi(value) }
	flt := func(p *float64) {
		*p, err = strconv.ParseFloat(value, 64)
		if err == nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
			err = errors.New("not a finite number")
		}
	}
	flag := func(p *bool) { *p, err = strconv.ParseBool(value) }
	for _, t := range c.Timeouts.fields() {
		if t.key == key {
			dur(t.p)
			return setErr(key, value, err)
		}
	}
	switch key {
	case "trial_min_requests":
		num(&c.TrialMinRequests)
	case "trial_min_duration":
		dur(&c.TrialMinDuration)
	case "trial_sample_rate":
		flt(&c.TrialSampleRate)
	case "trial_cost_cap":
		flt(&c.TrialCostCap)
	case "tolerance_abs":
		flt(&c.Tolerance.Abs)
	case "tolerance_rel":
		flt(&c.Tolerance.Rel)
	case "trial_max_errors":
		num(&c.TrialMaxErrors)
	case "trial_max_divergence":
		flt(&c.TrialMaxDivergence)
	case "latency_quantile":
		flt(&c.LatencyQuantile)
	case "latency_fraction":
		flt(&c.LatencyFraction)
	case "gate_requests":
		num(&c.GateRequests)
	case "gate_duration":
		dur(&c.GateDuration)
	case "max_crashes":
		num(&c.MaxCrashes)
	case "parked_only":
		flag(&c.ParkedOnly)
	case "skip_trial":
		flag(&c.SkipTrial)
	default:
		return fmt.Errorf("deploy config: unknown key %q", key)
	}
	return setErr(key, value, err)
}

func setErr(key, value string, err error) error {
	if err != nil {
		return fmt.Errorf("deploy config: %s=%q: %w", key, value, err)
	}
	return nil
}
