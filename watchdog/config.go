package watchdog

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Config holds the thresholds and timings of a Machine. Start from
// DefaultConfig, change what you need, and let New validate it.
type Config struct {
	// Policy is the redundancy policy at start; Command{Op: CmdSetPolicy}
	// changes it at runtime.
	Policy Policy
	// Deadline is the time a request has to be answered in.
	Deadline time.Duration

	// RecoverAfter is how many consecutive good results bring a suspect
	// backend back to healthy.
	RecoverAfter int
	// MissThreshold is how many consecutive deadline misses fail a backend.
	MissThreshold int
	// ErrorWindow is the number of most recent observations (results and
	// 2-of-3 blames) of a backend that the rate and count thresholds look at;
	// 1 to 64.
	ErrorWindow int
	// ErrorRate fails a backend when this fraction of the last ErrorWindow
	// observations were faults (errors, deadline misses or invalid outputs).
	// The denominator is always ErrorWindow, so a fresh backend is not failed
	// by its first error: the threshold count is ceil(ErrorRate*ErrorWindow).
	ErrorRate float64
	// InvalidThreshold fails a backend with this many invalid outputs
	// (NaN, Inf, out of the declared range) among the last ErrorWindow
	// observations.
	InvalidThreshold int
	// DivergenceThreshold fails a backend outvoted 2-of-3 this many times
	// among the last ErrorWindow observations.
	DivergenceThreshold int
	// MaxTemperatureC makes GPU backends suspect while the GPU is at or
	// above this temperature; 0 disables the check (throttling still
	// counts).
	MaxTemperatureC float64

	// CoolDown is the least time a backend stays failed before probation.
	CoolDown time.Duration
	// CanaryInterval is the time between canary probes in probation.
	CanaryInterval time.Duration
	// CanaryCount is how many good canaries in a row fail-back needs.
	CanaryCount int
	// CanaryMinSpan is the least time between the first and the last of
	// those good canaries.
	CanaryMinSpan time.Duration
	// MaxSwitchesPerMinute caps changes of the serving rung over any rolling
	// minute. Only fail-backs wait for room; failing away from a broken
	// backend never waits. At least 2.
	MaxSwitchesPerMinute int

	// HedgeFactor multiplies the primary's p95 latency to get the warm
	// policy's hedge delay.
	HedgeFactor float64
	// HedgeMargin is kept free before the deadline when a later rung's
	// start is delayed: the shadow's hedge delay and the degraded model's
	// last-resort delay never exceed Deadline - estimate - HedgeMargin.
	HedgeMargin time.Duration
	// InitialLatency is the latency estimate of a backend that has not
	// reported any yet.
	InitialLatency time.Duration
	// ArbitrateFor is how long after a primary–shadow divergence the
	// degraded model runs on every request (delay 0), so that the next
	// divergence can be settled 2-of-3. 0 disables it.
	ArbitrateFor time.Duration
}

// DefaultConfig returns the configuration used unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Policy:               Hot,
		Deadline:             33 * time.Millisecond,
		RecoverAfter:         5,
		MissThreshold:        3,
		ErrorWindow:          20,
		ErrorRate:            0.25,
		InvalidThreshold:     2,
		DivergenceThreshold:  2,
		MaxTemperatureC:      95,
		CoolDown:             2 * time.Second,
		CanaryInterval:       250 * time.Millisecond,
		CanaryCount:          5,
		CanaryMinSpan:        2 * time.Second,
		MaxSwitchesPerMinute: 4,
		HedgeFactor:          1.0,
		HedgeMargin:          2 * time.Millisecond,
		InitialLatency:       10 * time.Millisecond,
		ArbitrateFor:         2 * time.Second,
	}
}

// FieldError is a problem with one field of a Config.
type FieldError struct {
	Field   string // the Go field name, e.g. "MissThreshold"
	Problem string
}

func (e *FieldError) Error() string {
	return "watchdog config: " + e.Field + ": " + e.Problem
}

// Validate checks every field and returns all problems found, each a
// *FieldError naming its field, joined with errors.Join; nil if none.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if !c.Policy.Valid() {
		bad("Policy", "unknown policy %d", uint8(c.Policy))
	}
	if c.Deadline <= 0 {
		bad("Deadline", "must be positive, got %v", c.Deadline)
	}
	if c.RecoverAfter < 1 {
		bad("RecoverAfter", "must be at least 1, got %d", c.RecoverAfter)
	}
	if c.MissThreshold < 1 {
		bad("MissThreshold", "must be at least 1, got %d", c.MissThreshold)
	}
	if c.ErrorWindow < 1 || c.ErrorWindow > 64 {
		bad("ErrorWindow", "must be between 1 and 64, got %d", c.ErrorWindow)
	}
	if !(c.ErrorRate > 0 && c.ErrorRate <= 1) {
		bad("ErrorRate", "must be in (0, 1], got %v", c.ErrorRate)
	}
	if c.InvalidThreshold < 1 || c.InvalidThreshold > c.ErrorWindow {
		bad("InvalidThreshold", "must be between 1 and ErrorWindow (%d), got %d", c.ErrorWindow, c.InvalidThreshold)
	}
	if c.DivergenceThreshold < 1 || c.DivergenceThreshold > c.ErrorWindow {
		bad("DivergenceThreshold", "must be between 1 and ErrorWindow (%d), got %d", c.ErrorWindow, c.DivergenceThreshold)
	}
	if c.MaxTemperatureC < 0 || math.IsNaN(c.MaxTemperatureC) {
		bad("MaxTemperatureC", "must be 0 (off) or positive, got %v", c.MaxTemperatureC)
	}
	if c.CoolDown < 0 {
		bad("CoolDown", "must not be negative, got %v", c.CoolDown)
	}
	if c.CanaryInterval <= 0 {
		bad("CanaryInterval", "must be positive, got %v", c.CanaryInterval)
	}
	if c.CanaryCount < 1 {
		bad("CanaryCount", "must be at least 1, got %d", c.CanaryCount)
	}
	if c.CanaryMinSpan < 0 {
		bad("CanaryMinSpan", "must not be negative, got %v", c.CanaryMinSpan)
	}
	if c.MaxSwitchesPerMinute < 2 {
		bad("MaxSwitchesPerMinute", "must be at least 2 (a failover and its fail-back), got %d", c.MaxSwitchesPerMinute)
	}
	if !(c.HedgeFactor > 0) || math.IsInf(c.HedgeFactor, 0) {
		bad("HedgeFactor", "must be positive and finite, got %v", c.HedgeFactor)
	}
	if c.HedgeMargin < 0 || (c.Deadline > 0 && c.HedgeMargin >= c.Deadline) {
		bad("HedgeMargin", "must be at least 0 and less than Deadline (%v), got %v", c.Deadline, c.HedgeMargin)
	}
	if c.InitialLatency <= 0 {
		bad("InitialLatency", "must be positive, got %v", c.InitialLatency)
	}
	if c.ArbitrateFor < 0 {
		bad("ArbitrateFor", "must not be negative, got %v", c.ArbitrateFor)
	}
	return errors.Join(errs...)
}

// errorLimit is the number of faults in the window that fails a backend.
func (c Config) errorLimit() int {
	n := int(math.Ceil(c.ErrorRate*float64(c.ErrorWindow) - 1e-9))
	if n < 1 {
		n = 1
	}
	return n
}

// Set changes one field by its snake_case key, as a configuration file or a
// command line would name it: policy, deadline, recover_after,
// miss_threshold, error_window, error_rate, invalid_threshold,
// divergence_threshold, max_temperature_c, cool_down, canary_interval,
// canary_count, canary_min_span, max_switches_per_minute, hedge_factor,
// hedge_margin, initial_latency, arbitrate_for. Durations use Go syntax
// ("33ms"). Set parses only; call Validate for the ranges.
func (c *Config) Set(key, value string) error {
	var err error
	dur := func(p *time.Duration) { *p, err = time.ParseDuration(value) }
	num := func(p *int) { *p, err = strconv.Atoi(value) }
	flt := func(p *float64) { *p, err = strconv.ParseFloat(value, 64) }
	switch key {
	case "policy":
		c.Policy, err = ParsePolicy(value)
	case "deadline":
		dur(&c.Deadline)
	case "recover_after":
		num(&c.RecoverAfter)
	case "miss_threshold":
		num(&c.MissThreshold)
	case "error_window":
		num(&c.ErrorWindow)
	case "error_rate":
		flt(&c.ErrorRate)
	case "invalid_threshold":
		num(&c.InvalidThreshold)
	case "divergence_threshold":
		num(&c.DivergenceThreshold)
	case "max_temperature_c":
		flt(&c.MaxTemperatureC)
	case "cool_down":
		dur(&c.CoolDown)
	case "canary_interval":
		dur(&c.CanaryInterval)
	case "canary_count":
		num(&c.CanaryCount)
	case "canary_min_span":
		dur(&c.CanaryMinSpan)
	case "max_switches_per_minute":
		num(&c.MaxSwitchesPerMinute)
	case "hedge_factor":
		flt(&c.HedgeFactor)
	case "hedge_margin":
		dur(&c.HedgeMargin)
	case "initial_latency":
		dur(&c.InitialLatency)
	case "arbitrate_for":
		dur(&c.ArbitrateFor)
	default:
		return fmt.Errorf("watchdog config: unknown key %q", key)
	}
	if err != nil {
		return fmt.Errorf("watchdog config: %s=%q: %w", key, value, err)
	}
	return nil
}
