package inference

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Runs made on the caller's goroutine
//
// Backend.Run hands the native call to the session's goroutine so that its
// caller can return at the deadline. The router's lanes need no such
// hand-off: a lane is a goroutine of its own, and the router's caller
// already waits for it with the deadline. So a lane makes the native call
// itself (runHere), and what Run's wait does at the deadline, a runWatch
// does instead: a timer, armed for the run's deadline, that asks ONNX
// Runtime to stop and, when the call is still going, marks the session
// abandoned and lets the lane's owner answer for the run at once. The lane
// is then left with only the native call: when it returns, the session
// goes back to its pool and the goroutine ends (another took its place).
//
// slot.state decides who finishes a run, as with Run: the goroutine that
// made the call (slotRunning → slotFinished) or the watch (slotRunning →
// slotAbandoned), never both.

// laneRunner is a Runner whose native call a lane can make on its own
// goroutine. *Backend and *Faulty implement it; the router runs any other
// Runner through Run.
type laneRunner interface {
	// runHere is Run on the calling goroutine, without ctx, watched by w,
	// of a request's inputs in f, which the backend copies into its
	// session (frame.copyTo; errFrameGone when f was closed first).
	// It returns errAbandoned when w gave the run up at its deadline: w's
	// gaveUp has then answered for it, and the caller must touch nothing
	// of the run (its out, its request) any more.
	runHere(deadline time.Time, f *frame, out []Tensor, w *runWatch) (Result, error)
}

// errAbandoned tells a lane that its run was given up at the deadline and
// already answered for. It never leaves the package.
var errAbandoned = errors.New("run abandoned at its deadline")

// runWatch stops one run at a time, made on its owner's goroutine, at the
// run's deadline. It is made once and reused: arming and disarming it
// allocate nothing.
type runWatch struct {
	timer *time.Timer
	slot  atomic.Pointer[slot] // the session of the run armed for
	fired chan struct{}        // expire has ended (one per firing)
	// gaveUp answers for a run the watch abandoned; it runs on the timer's
	// goroutine and must not block.
	gaveUp func()
}

func newRunWatch(gaveUp func()) *runWatch {
	w := &runWatch{fired: make(chan struct{}, 1), gaveUp: gaveUp}
	w.timer = time.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	return w
}

// arm watches the run about to start on s, until d from now. What the
// owner wrote before arm, gaveUp may read.
func (w *runWatch) arm(s *slot, d time.Duration) {
	w.slot.Store(s)
	w.timer.Reset(d)
}

// disarm ends the watch once the native call on s has returned. It reports
// false when the watch abandoned the run first. Either way the watch is
// done with s when disarm returns: Terminate is set only on an abandoned
// run.
func (w *runWatch) disarm(s *slot) bool {
	if s.state.CompareAndSwap(slotRunning, slotFinished) {
		if !w.timer.Stop() {
			<-w.fired // expire found the run finished and cleared Terminate
		}
		return true
	}
	<-w.fired
	return false
}

func (w *runWatch) expire() {
	if w.slot.Load().abandon() {
		w.gaveUp()
	}
	w.fired <- struct{}{}
}

// runHere is Run made on the calling goroutine (see laneRunner).
func (b *Backend) runHere(deadline time.Time, f *frame, out []Tensor, w *runWatch) (Result, error) {
	if b.w != nil {
		// The lane waits for the worker with the deadline itself: no
		// native call holds it, so nothing is abandoned to the watch.
		return b.w.run(context.Background(), deadline, nil, f, out)
	}
	for {
		res, err := b.runHereOn(b.cur.Load(), deadline, f, out, w)
		if err != errReplaced {
			return res, err
		}
	}
}

func (b *Backend) runHereOn(g *sessionSet, deadline time.Time, f *frame, out []Tensor, w *runWatch) (Result, error) {
	s, n, t0, err := b.begin(context.Background(), g, deadline, nil, f, out)
	if s == nil {
		return Result{}, err
	}
	t1 := time.Now()
	res := Result{Wait: t1.Sub(t0)}
	s.state.Store(slotRunning)
	b.inFlight.Add(1)
	w.arm(s, deadline.Sub(t1))
	err = s.run.RunWithOptions(s.opts)
	b.inFlight.Add(-1)
	if !w.disarm(s) {
		s.opts.UnsetTerminate()
		s.release()
		return res, errAbandoned
	}
	res.Latency = time.Since(t1)
	return res, b.end(g, s, err, out, n)
}
