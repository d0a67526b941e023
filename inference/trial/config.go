package trial

import (
	"fmt"
	"math"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/watchdog"
)

// DefaultTolerance is the tolerance of a trial whose configuration and
// bundle give none: |candidate - served| <= 0.05 on every output element,
// the demo models' demo.RolloutTolerance.
var DefaultTolerance = bundle.Tolerance{Abs: 0.05}

// Config tunes a trial: which answers it samples, how much the candidate
// may cost, and what counts as agreeing.
type Config struct {
	// Rung is the rung the candidate would replace, "primary", "shadow"
	// or "degraded": the candidate is tried only on requests that rung
	// served, against its outputs. "" means "primary".
	Rung string `yaml:"rung" json:"rung"`
	// SampleRate is the share of the rung's answers that are sampled, in
	// (0, 1]: 0.1 samples the 10th, 20th, 30th… 0 means 0.1.
	SampleRate float64 `yaml:"sample_rate" json:"sample_rate"`
	// MaxRate caps candidate runs per second. 0 means 5.
	MaxRate float64 `yaml:"max_rate" json:"max_rate"`
	// MaxShare caps the share of wall time the candidate runs, in (0, 1]:
	// after a run of d started at s, the next starts no earlier than
	// s + d/MaxShare. 0 means 0.25.
	MaxShare float64 `yaml:"max_share" json:"max_share"`
	// RunTimeout is the candidate's own deadline for a run: a run not
	// answered by then is abandoned and counts as a hang. 0 means twice
	// the sampled request's budget (its deadline less its arrival).
	RunTimeout time.Duration `yaml:"run_timeout" json:"run_timeout"`
	// Tolerance: a candidate element c agrees with the served p when
	// |c-p| <= Abs + Rel*|p|. Zero means DefaultTolerance; a bundle's
	// manifest may carry its own.
	Tolerance bundle.Tolerance `yaml:"tolerance" json:"tolerance"`
	// OnSample, when set, gets every sample, from the trial's goroutine:
	// while it runs no candidate run starts (the serving path never
	// waits for it).
	OnSample func(Sample) `yaml:"-" json:"-"`
}

// Validate checks every field; an error names the field (as in the
// configuration file) and what it takes.
func (c Config) Validate() error {
	if c.Rung != "" {
		if _, err := watchdog.ParseBackend(c.Rung); err != nil {
			return fmt.Errorf("trial: rung: %w", err)
		}
	}
	if bad(c.SampleRate) || c.SampleRate < 0 || c.SampleRate > 1 {
		return fmt.Errorf("trial: sample_rate %v: want a share in (0, 1], or 0 for 0.1", c.SampleRate)
	}
	if bad(c.MaxRate) || c.MaxRate < 0 {
		return fmt.Errorf("trial: max_rate %v: want candidate runs per second above 0, or 0 for 5", c.MaxRate)
	}
	if bad(c.MaxShare) || c.MaxShare < 0 || c.MaxShare > 1 {
		return fmt.Errorf("trial: max_share %v: want a share of wall time in (0, 1], or 0 for 0.25", c.MaxShare)
	}
	if c.RunTimeout < 0 {
		return fmt.Errorf("trial: run_timeout %v: want a positive duration, or 0 for twice the request's budget", c.RunTimeout)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"tolerance.abs", c.Tolerance.Abs}, {"tolerance.rel", c.Tolerance.Rel}} {
		if bad(f.v) || f.v < 0 {
			return fmt.Errorf("trial: %s %v: want a finite number >= 0", f.name, f.v)
		}
	}
	return nil
}

func bad(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// withDefaults returns c with its zero fields set; c must be valid.
func (c Config) withDefaults() Config {
	if c.Rung == "" {
		c.Rung = watchdog.Primary.String()
	}
	if c.SampleRate == 0 {
		c.SampleRate = 0.1
	}
	if c.MaxRate == 0 {
		c.MaxRate = 5
	}
	if c.MaxShare == 0 {
		c.MaxShare = 0.25
	}
	if c.Tolerance == (bundle.Tolerance{}) {
		c.Tolerance = DefaultTolerance
	}
	return c
}
