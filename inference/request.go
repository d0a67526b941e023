package inference

import (
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// request is the state of one request, reused: the frame its lanes copy
// the inputs from (the caller's tensors; see frame.go), one set of outputs
// per backend, and the channel lanes answer on.
type request struct {
	frame frame
	in    []Tensor // a canary's own inputs; nil for a serving request
	out   [watchdog.NumBackends][]Tensor
	done  chan watchdog.Backend // lanes send their backend when they finish
	// Written by a lane before it sends on done; read by the router after
	// receiving, and by finish after every lane is over.
	result   [watchdog.NumBackends]laneResult
	started  [watchdog.NumBackends]bool
	seen     [watchdog.NumBackends]bool // the router has received the lane's answer
	unloaded [watchdog.NumBackends]bool // planned but not loaded: a failed run
	t0       time.Time
	deadline time.Time
	timer    *time.Timer
	compare  bool
	vote     bool
	canary   bool
	canaryOf watchdog.Backend
	refs     atomic.Int32 // lanes running plus the router while it waits
}

type laneResult struct {
	outcome Outcome
	latency time.Duration
	run     watchdog.RunResult // the watchdog's view of the run
	// notRun: the lane did not run the model, and the watchdog does not
	// hear of it — the request was answered before the lane could copy its
	// inputs (errFrameGone), or refused is set.
	notRun bool
	// refused is the *InputError of a copy whose values the checks refuse.
	refused error
}

func (r *Router) newRequest() *request {
	q := &request{done: make(chan watchdog.Backend, watchdog.NumBackends), timer: time.NewTimer(time.Hour)}
	q.timer.Stop()
	q.frame = newFrame(len(r.inputs))
	for b := range q.out {
		q.out[b] = make([]Tensor, len(r.outputs))
		for i, t := range r.outputs {
			q.out[b][i] = newBuffer(t)
		}
	}
	return q
}

// newCanary is a request with inputs of its own, a fixed pattern of one
// frame, which its frame holds.
func (r *Router) newCanary(b watchdog.Backend) *request {
	q := r.newRequest()
	q.canary, q.canaryOf = true, b
	q.in = make([]Tensor, len(r.inputs))
	for i, t := range r.inputs {
		q.in[i] = newBuffer(t)
	}
	fillPattern(q.in)
	r.setBatch(q, 1)
	copy(q.frame.in, q.in)
	q.frame.open(nil, 1)
	return q
}

// setBatch sizes a canary's inputs for a batch of n frames, within the
// capacity newCanary gave them.
func (r *Router) setBatch(q *request, n int) {
	for j := range q.in {
		t, w := &q.in[j], &r.inputs[j]
		size := w.Size / max(r.maxBatch, 1) * n
		t.Shape = w.shapeFor(n)
		if t.Data != nil {
			t.Data = t.Data[:size]
		} else {
			t.Raw = t.Raw[:size*w.DType.Size()]
		}
	}
}

// release drops one reference to q; the last one compares the answers,
// reports, and returns q for reuse.
func (r *Router) release(q *request) {
	if q.refs.Add(-1) != 0 {
		return
	}
	r.finish(q)
}

// finish runs once every lane of q is over: it reports the runs of a
// serving request together, compares primary and shadow when the plan asked
// for it and, when they diverged and the degraded model answered too, lets
// it break the tie.
func (r *Router) finish(q *request) {
	for len(q.done) > 0 {
		<-q.done
	}
	if !q.canary && r.rep != nil {
		var rr watchdog.RequestResult
		for b := range q.result {
			if (q.started[b] && !q.result[b].notRun) || q.unloaded[b] {
				rr.Runs[rr.NumRuns] = q.result[b].run
				rr.NumRuns++
			}
		}
		if rr.NumRuns > 0 {
			r.rep.ReportRequest(rr)
		}
	}
	ok := func(b watchdog.Backend) bool {
		return q.started[b] && !q.result[b].notRun && q.result[b].outcome == OutcomeOK
	}
	if q.compare && r.rep != nil && ok(watchdog.Primary) && ok(watchdog.Shadow) {
		d := distance(q.out[watchdog.Primary], q.out[watchdog.Shadow])
		diverged := d > float64(r.cfg.CompareTolerance)
		r.rep.ReportComparison(watchdog.Comparison{Diverged: diverged, Distance: d})
		if diverged && q.vote && ok(watchdog.Degraded) {
			tol := float64(r.cfg.VoteTolerance)
			pd := distance(q.out[watchdog.Primary], q.out[watchdog.Degraded]) <= tol
			sd := distance(q.out[watchdog.Shadow], q.out[watchdog.Degraded]) <= tol
			r.rep.ReportVote(watchdog.VoteOf(false, pd, sd))
		}
	}
	q.started = [watchdog.NumBackends]bool{}
	q.seen = [watchdog.NumBackends]bool{}
	q.unloaded = [watchdog.NumBackends]bool{}
	if q.canary {
		r.canaries[q.canaryOf] <- q
		return
	}
	r.pool <- q
}

// distance is the largest absolute difference between two sets of float32
// outputs of the same contract.
func distance(a, b []Tensor) float64 {
	var d float32
	for i := range a {
		for j, v := range a[i].Data {
			w := b[i].Data[j]
			diff := v - w
			if diff < 0 {
				diff = -diff
			}
			if diff > d || diff != diff {
				d = diff
			}
		}
	}
	return float64(d)
}
