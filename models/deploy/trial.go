package deploy

import (
	"fmt"
	"math"
	"time"
)

// sample counts one trial sample and judges the trial.
func (d *Deployment) sample(now time.Time, s TrialSample) {
	t := &d.s.Trial
	if s.Outcome != Answered {
		t.Errors = addSat(t.Errors, 1)
		t.LastError = s.Outcome.String()
	} else {
		t.Compared = addSat(t.Compared, 1)
		if !s.Within {
			t.Divergent++
		}
		if float64(s.Latency) > d.cfg.LatencyFraction*float64(s.Budget) {
			t.Slow++
		}
	}
	d.judgeTrial(now)
}

// judgeTrial fails the trial at once when the candidate made more errors
// than allowed; otherwise, once it has TrialMinRequests compared requests
// over at least TrialMinDuration, passes or fails it on divergence and
// latency.
func (d *Deployment) judgeTrial(now time.Time) {
	t, c := d.s.Trial, d.cfg
	if t.Errors > c.TrialMaxErrors {
		d.finish(now, TrialFailed, fmt.Sprintf("%d candidate errors, at most %d allowed (last: %s)", t.Errors, c.TrialMaxErrors, t.LastError), true)
		return
	}
	span := now.Sub(t.Started)
	if t.Compared < c.TrialMinRequests || span < c.TrialMinDuration {
		return
	}
	if allowed := divergentAllowed(c.TrialMaxDivergence, t.Compared); t.Divergent > allowed {
		d.finish(now, TrialFailed, fmt.Sprintf("outputs outside tolerance (%s) on %d of %d compared requests, at most %d allowed",
			d.s.Tolerance, t.Divergent, t.Compared, allowed), true)
		return
	}
	if allowed := slowAllowed(c.LatencyQuantile, t.Compared); t.Slow > allowed {
		d.finish(now, TrialFailed, fmt.Sprintf("too slow: p%g latency over %g of the deadline budget (%d of %d requests slower, at most %d allowed)",
			100*c.LatencyQuantile, c.LatencyFraction, t.Slow, t.Compared, allowed), true)
		return
	}
	d.s.Trial.Passed = true
	d.emit(StopTrial{})
	d.to(now, Promoting, fmt.Sprintf("trial passed: %d compared requests over %v, %d outside tolerance, %d slow, %d errors",
		t.Compared, span, t.Divergent, t.Slow, t.Errors))
}

// divergentAllowed is how many of n compared requests may be outside the
// tolerance: floor(fraction × n).
func divergentAllowed(fraction float64, n int) int {
	return int(math.Floor(fraction*float64(n) + 1e-9))
}

// slowAllowed is how many of n latencies may be over the limit with the
// q-quantile still within it. The nearest-rank q-quantile is the
// ceil(q × n)-th smallest latency; it is within the limit exactly when at
// most n − ceil(q × n) latencies are over it.
func slowAllowed(q float64, n int) int {
	return n - int(math.Ceil(q*float64(n)-1e-9))
}

// addSat adds without overflowing.
func addSat(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}
