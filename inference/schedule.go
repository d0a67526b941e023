package inference

import (
	"context"
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// follow runs the plan for q and fills ans. It returns the backend whose
// outputs are served, or the *InputError of a lane whose copy of the
// inputs the value checks refused.
func (r *Router) follow(ctx context.Context, p *watchdog.Plan, q *request, ans *Answer) (watchdog.Backend, bool, error) {
	starts, prefer := p.StartList(), p.PreferList()
	for _, s := range starts {
		ans.Backends[s.Backend].Outcome = OutcomeSkipped
	}
	next, running, failed, started, busy := 0, 0, 0, 0, 0
	var graceEnd time.Time // set when a less preferred answer is at hand
	for {
		now := time.Now()
		// Start what is due: by its delay, or at once when everything
		// started so far has failed. Nothing more once an answer is at hand.
		for next < len(starts) && !r.haveAcceptable(q, prefer) {
			s := starts[next]
			if now.Before(startAt(p, q, s)) && (started == 0 || failed < started) {
				break
			}
			next++
			started++
			rep := &ans.Backends[s.Backend]
			rep.StartedAfter = now.Sub(q.t0)
			if r.dispatch(s.Backend, q) {
				rep.Outcome = OutcomePending
				running++
				continue
			}
			rep.Outcome = r.notRun(s.Backend, q)
			if rep.Outcome == OutcomeBusy {
				busy++
			}
			failed++
		}
		final := !now.Before(q.deadline)
		if graceEnd.IsZero() && r.haveAcceptable(q, prefer) {
			graceEnd = now.Add(r.cfg.PreferWait)
		}
		if b, ok := r.choose(q, prefer, final || (!graceEnd.IsZero() && !now.Before(graceEnd))); ok {
			ans.Status, ans.ServedBy = StatusOK, b
			return b, true, nil
		}
		if running == 0 && next == len(starts) {
			if busy == started {
				ans.noResult(ReasonOverloaded) // nothing failed: nothing could start
			} else {
				ans.noResult(ReasonAllFailed)
			}
			return 0, false, nil
		}
		if final {
			ans.noResult(ReasonDeadline)
			return 0, false, nil
		}
		wake := q.deadline
		if !graceEnd.IsZero() && graceEnd.Before(wake) {
			wake = graceEnd
		}
		if next < len(starts) {
			if t := startAt(p, q, starts[next]); t.Before(wake) {
				wake = t
			}
		}
		q.timer.Reset(wake.Sub(now))
		select {
		case b := <-q.done:
			q.timer.Stop()
			q.seen[b] = true
			running--
			if err := q.result[b].refused; err != nil {
				r.drain(ctx, q, running)
				return 0, false, err
			}
			rep := &ans.Backends[b]
			rep.Outcome, rep.Latency = q.result[b].outcome, q.result[b].latency
			if rep.Outcome != OutcomeOK {
				failed++
			}
		case <-q.timer.C:
		case <-ctx.Done():
			q.timer.Stop()
			ans.noResult(ReasonCancelled)
			return 0, false, nil
		}
	}
}

// drain ends a request whose inputs a lane refused: it closes the frame,
// so that the lanes that have not copied yet stop at once, and waits for
// the running lanes (until the deadline), so that a request sent right
// after the refusal finds them free, as if no backend had seen this one.
func (r *Router) drain(ctx context.Context, q *request, running int) {
	q.frame.close()
	for ; running > 0; running-- {
		q.timer.Reset(time.Until(q.deadline))
		select {
		case b := <-q.done:
			q.timer.Stop()
			q.seen[b] = true
		case <-q.timer.C:
			return
		case <-ctx.Done():
			q.timer.Stop()
			return
		}
	}
}

// startAt is when a planned start is due. The plan's delays are worked out
// for the watchdog's deadline; a backend started late in the budget (the
// degraded model as last resort) keeps the slack the plan gave it before
// this request's own deadline.
func startAt(p *watchdog.Plan, q *request, s watchdog.Start) time.Time {
	at := q.t0.Add(s.Delay)
	if p.Deadline > s.Delay {
		if latest := q.deadline.Add(s.Delay - p.Deadline); latest.Before(at) {
			at = latest
		}
	}
	return at
}

// dispatch hands q to a lane of backend b, unless all its lanes are taken.
func (r *Router) dispatch(b watchdog.Backend, q *request) bool {
	if r.backends[b] == nil {
		return false
	}
	if r.busy[b].Add(1) > r.nlanes[b] {
		r.busy[b].Add(-1)
		return false
	}
	q.refs.Add(1)
	q.started[b] = true
	r.lanes[b] <- q // buffered for every lane: never blocks
	return true
}

// notRun accounts for a backend that could not be started. A backend that
// is not loaded has failed, and the watchdog hears so: at once for a
// canary, with the request's other runs for a serving request. A backend
// whose lanes are all taken is not reported: that is load, not a fault of
// the backend, and if its runs are stuck, their own results (deadline
// misses) tell the watchdog.
func (r *Router) notRun(b watchdog.Backend, q *request) Outcome {
	if r.backends[b] != nil {
		r.stats.busy.Add(1)
		return OutcomeBusy
	}
	run := watchdog.RunResult{Backend: b, Err: watchdog.RunFailed, Canary: q.canary}
	if q.canary {
		if r.rep != nil {
			r.rep.ReportRun(run)
		}
		return OutcomeFailed
	}
	q.result[b] = laneResult{outcome: OutcomeFailed, run: run}
	q.unloaded[b] = true
	return OutcomeFailed
}

// haveAcceptable reports whether any started backend has answered well.
func (r *Router) haveAcceptable(q *request, prefer []watchdog.Backend) bool {
	for _, b := range prefer {
		// seen first: result is the lane's until the router has seen it.
		if q.seen[b] && q.result[b].outcome == OutcomeOK {
			return true
		}
	}
	return false
}

// answered reports whether backend b's lane has finished for q, as seen by
// the router (it has received b on done).
func (q *request) answered(b watchdog.Backend) bool { return q.seen[b] }

// choose picks the answer to serve: the most preferred acceptable answer,
// once no more preferred backend is still running — or, when done waiting
// (the deadline, or PreferWait after a good answer), the best one at hand.
func (r *Router) choose(q *request, prefer []watchdog.Backend, final bool) (watchdog.Backend, bool) {
	for _, b := range prefer {
		switch {
		case !q.started[b]:
		case !q.answered(b):
			if !final {
				return 0, false
			}
		case q.result[b].outcome == OutcomeOK:
			return b, true
		}
	}
	return 0, false
}
