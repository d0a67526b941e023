package inference

import (
	"context"
	"errors"

	"github.com/vigil-av/vigil/watchdog"
)

// lane is one goroutine that runs a backend's requests, one at a time,
// until the router closes. For a laneRunner (a *Backend, bare or under
// Faulty) the lane makes the native call itself, watched by watch (see
// direct.go): the request's caller waits for the lane with its deadline,
// and that is the only hand-off of the run; the backend copies the
// request's inputs from its frame straight into the session. Any other
// Runner runs through Run, on the lane's own copy of the inputs.
type lane struct {
	r     *Router
	b     watchdog.Backend
	q     *request // the request running; gaveUp reads it
	watch *runWatch
}

// startLane starts a lane of backend b. The caller has counted it in r.wg.
func (r *Router) startLane(b watchdog.Backend) {
	l := &lane{r: r, b: b}
	l.watch = newRunWatch(l.gaveUp)
	go l.loop()
}

func (l *lane) loop() {
	r, b := l.r, l.b
	be := r.backends[b]
	direct, _ := be.(laneRunner)
	if backendOf(be) == nil { // a wrapper of some other Runner
		direct = nil
	}
	var own []Tensor // the inputs for a Runner that is not a laneRunner
	if direct == nil {
		own = make([]Tensor, len(r.inputs))
		for i, t := range r.inputs {
			own[i] = newBuffer(t)
		}
	}
	for q := range r.lanes[b] {
		var res Result
		var err error
		if direct != nil {
			l.q = q
			res, err = direct.runHere(q.deadline, &q.frame, q.out[b], l.watch)
			if err == errAbandoned {
				// gaveUp answered for q at its deadline and started a
				// lane in this one's place (which r.wg now counts): this
				// goroutine only waited for the native call to return.
				return
			}
		} else if err = q.frame.copyInto(own); err == nil {
			res, err = be.Run(context.Background(), q.deadline, own, q.out[b])
		}
		l.answer(q, laneResultOf(b, q, res, err))
	}
	r.wg.Done()
}

// laneResultOf is the lane's result of a run of q on b that returned res
// and err.
func laneResultOf(b watchdog.Backend, q *request, res Result, err error) laneResult {
	lr := laneResult{outcome: OutcomeOK, latency: res.Latency}
	lr.run = watchdog.RunResult{Backend: b, Latency: res.Latency, Canary: q.canary}
	switch {
	case err == nil:
	case err == errFrameGone:
		lr.outcome, lr.notRun = OutcomeSkipped, true
	case isInputError(err):
		lr.outcome, lr.notRun, lr.refused = OutcomeFailed, true, err
	default:
		lr.outcome, lr.run.Err, lr.run.Invalid = classify(err)
		if lr.run.Err == watchdog.RunDeadline {
			lr.run.Latency = q.deadline.Sub(q.t0)
		}
	}
	return lr
}

// gaveUp answers for the request whose native call the watch abandoned at
// its deadline, as a deadline miss, as Run's caller would have been told,
// and puts a new lane in this one's place, so that the backend keeps its
// lanes (a later request then waits for a free session, as before, rather
// than finding the lane taken). It runs on the watch's timer goroutine.
func (l *lane) gaveUp() {
	q := l.q
	// Start the new lane before q goes back: until then Close cannot
	// close the lanes.
	l.r.startLane(l.b)
	run := watchdog.RunResult{Backend: l.b, Err: watchdog.RunDeadline, Latency: q.deadline.Sub(q.t0), Canary: q.canary}
	l.answer(q, laneResult{outcome: OutcomeDeadline, run: run})
}

// answer gives q the lane's result and drops the lane's hold on it.
func (l *lane) answer(q *request, lr laneResult) {
	r, b := l.r, l.b
	q.result[b] = lr
	if q.canary && r.rep != nil && !lr.notRun {
		r.rep.ReportRun(lr.run) // serving runs go out together, from finish
	}
	// Free the lane before telling the router, so that a request the
	// caller sends right after this answer finds the lane free.
	r.busy[b].Add(-1)
	q.done <- b
	r.release(q)
}

// isInputError reports whether err is an *InputError: a run refused for
// its inputs' values, which the router blames on the request.
func isInputError(err error) bool {
	var e *InputError
	return errors.As(err, &e)
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
