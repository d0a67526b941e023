package inference

import (
	"context"
	"errors"

	"github.com/vigil-av/vigil/watchdog"
)

// lane runs backend b for requests until the router closes.
func (r *Router) lane(b watchdog.Backend) {
	defer r.wg.Done()
	be := r.backends[b]
	for q := range r.lanes[b] {
		res, err := be.Run(context.Background(), q.deadline, q.in, q.out[b])
		lr := laneResult{outcome: OutcomeOK, latency: res.Latency}
		rr := watchdog.RunResult{Backend: b, Latency: res.Latency, Canary: q.canary}
		if err != nil {
			lr.outcome, rr.Err, rr.Invalid = classify(err)
			if rr.Err == watchdog.RunDeadline {
				rr.Latency = q.deadline.Sub(q.t0)
			}
		}
		lr.run = rr
		q.result[b] = lr
		if q.canary && r.rep != nil {
			r.rep.ReportRun(rr) // serving runs go out together, from finish
		}
		// Free the lane before telling the router, so that a request the
		// caller sends right after this answer finds the lane free.
		r.busy[b].Add(-1)
		q.done <- b
		r.release(q)
	}
}

// classify turns a run's error into the router's outcome and the
// watchdog's view of it.
func classify(err error) (Outcome, watchdog.RunErr, watchdog.Validity) {
	var invalid *InvalidOutputError
	switch {
	case errors.As(err, &invalid):
		return OutcomeInvalid, watchdog.RunOK, validity(invalid.Reason)
	case errors.Is(err, ErrDeadline):
		return OutcomeDeadline, watchdog.RunDeadline, watchdog.Valid
	}
	return OutcomeFailed, watchdog.RunFailed, watchdog.Valid
}

func validity(reason string) watchdog.Validity {
	switch reason {
	case InvalidNaN:
		return watchdog.InvalidNaN
	case InvalidInf:
		return watchdog.InvalidInf
	}
	return watchdog.InvalidRange
}
