package inference

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-av/vigil/inference/worker"
)

// ErrWorkerDown is wrapped by the errors of runs of a backend whose worker
// process is not serving: it was killed or died and its replacement is not
// warm yet, or it keeps dying. The error says why.
var ErrWorkerDown = errors.New("worker process not serving")

// run is Backend.Run for a backend in a worker: it takes a free session of
// the worker in service, copies the inputs into its shared memory, rings
// its doorbell and waits for the answer until the deadline (or ctx's, if
// earlier; ctx's cancellation without a deadline is not watched). At the
// deadline it asks the worker to stop the run and returns a
// *DeadlineError; the session comes back when the worker answers, or the
// worker is killed when it has not answered within the kill grace.
//
// A lane passes the request's frame f instead of in: its tensors were
// checked against the contract by the router, and are copied with
// frame.copyTo (values checked on the copy in the shared memory).
func (w *workers) run(ctx context.Context, deadline time.Time, in []Tensor, f *frame, out []Tensor) (Result, error) {
	if w.closed.Load() {
		return Result{}, ErrClosed
	}
	p := w.cur.Load()
	if p == nil {
		return Result{}, w.downError()
	}
	m := &p.info.Model
	n := 0
	if f != nil {
		n = f.batch
	} else {
		var err error
		if n, err = checkTensors(m.Inputs, m.MaxBatch, in); err != nil {
			return Result{}, err
		}
	}
	if len(out) != len(m.Outputs) {
		return Result{}, &InputError{Expected: fmt.Sprintf("%d output tensors", len(m.Outputs)), Got: fmt.Sprint(len(out))}
	}
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	t0 := time.Now()
	if !t0.Before(deadline) {
		return Result{}, &DeadlineError{Backend: p.info.Name, Stage: "before start"}
	}
	s, err := p.acquire(deadline)
	if err != nil {
		return Result{}, err
	}
	if f != nil {
		if err := f.copyTo(m.Inputs, s.views.inF32, s.views.inRaw); err != nil {
			p.pool <- s
			return Result{}, err
		}
	}
	for i := range in {
		j := tensorIndex(m.Inputs, in[i].Name, i)
		if s.views.inF32[j] != nil {
			copy(s.views.inF32[j], in[i].Data)
		} else {
			copy(s.views.inRaw[j], in[i].Raw)
		}
	}
	t1 := time.Now()
	res := Result{Wait: t1.Sub(t0)}
	s.seq++
	putRequest(&s.req, s.seq, n)
	w.inFlight.Add(1)
	if err := s.conn.Send(s.req[:]); err != nil {
		w.inFlight.Add(-1)
		p.pool <- s
		return res, w.lostError(p)
	}
	failed, text, err := p.await(s, deadline)
	if err != nil {
		return res, err
	}
	res.Latency = time.Since(t1)
	if failed {
		err = fmt.Errorf("backend %s: run: %s", p.info.Name, text)
		p.pool <- s
		return res, err
	}
	err = copyOutputs(&p.info, &s.views, out, n)
	p.served.Add(1)
	p.pool <- s
	return res, err
}

// await waits for the answer to s's run until deadline. On an answer it
// returns with s still taken; otherwise s is handed on (to its keeper at
// the deadline, back to the pool when the worker is gone) and the error
// says what happened.
func (p *proc) await(s *wslot, deadline time.Time) (failed bool, text string, err error) {
	w := p.w
	for {
		n, err := s.conn.Recv(s.rep[:], deadline)
		switch {
		case worker.Timeout(err):
			w.abandoned.Add(1)
			_ = p.send(ctrlMsg{Op: "terminate", Slot: s.i, Seq: s.seq}) // a CPU run stops between nodes
			s.grace = w.killGrace()
			s.abandon <- deadline.Add(s.grace.d)
			return false, "", &DeadlineError{Backend: p.info.Name, Stage: "running"}
		case err != nil:
			w.inFlight.Add(-1)
			p.pool <- s
			return false, "", w.lostError(p)
		}
		seq, bad, _, msg, ok := readReply(s.rep[:n])
		if !ok || seq != s.seq {
			continue // not this run's: cannot happen, a session answers in order
		}
		w.inFlight.Add(-1)
		if bad {
			text = string(msg)
		}
		return bad, text, nil
	}
}

// acquire takes a free session of p, waiting until the deadline or p's
// end.
func (p *proc) acquire(deadline time.Time) (*wslot, error) {
	select {
	case s := <-p.pool:
		return s, nil
	default:
	}
	t := waitTimers.Get().(*time.Timer)
	t.Reset(time.Until(deadline))
	defer func() {
		t.Stop()
		waitTimers.Put(t)
	}()
	select {
	case s := <-p.pool:
		return s, nil
	case <-p.p.Done():
		return nil, p.w.lostError(p)
	case <-t.C:
		return nil, &DeadlineError{Backend: p.info.Name, Stage: "queued"}
	}
}

// downError is the error of a run while no worker serves.
func (w *workers) downError() error {
	w.mu.Lock()
	why := w.down
	w.mu.Unlock()
	return fmt.Errorf("backend %s: %w: %s", w.cfg.Name, ErrWorkerDown, why)
}

// lostError is the error of a run whose worker ended under it.
func (w *workers) lostError(p *proc) error {
	return fmt.Errorf("backend %s: %w: the worker (pid %d) ended during the run", w.cfg.Name, ErrWorkerDown, p.p.Pid())
}
