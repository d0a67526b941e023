package inference

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Run runs the model on in and writes the outputs into out (whose Data is
// reused when its capacity suffices, allocated otherwise), answering by
// deadline at the latest. in must hold every model input, by name; see
// InputError. Past the deadline (or when ctx ends) the native run is asked to
// stop and Run returns a *DeadlineError (errors.Is ErrDeadline) or ctx's
// error at once, even if ONNX Runtime is still busy; the session is reused
// only after that native call returns.
//
// NaN, Inf or out-of-range outputs give an *InvalidOutputError with the
// outputs still written to out.
//
// A backend loaded with MaxBatch runs a batch of 1 to MaxBatch frames, as
// many as the inputs' first axis holds, and writes as many answers on the
// outputs' first axis.
//
// A run goes to the model in service when it takes a session; a Replace
// that swaps the model meanwhile lets it finish on the old one.
func (b *Backend) Run(ctx context.Context, deadline time.Time, in, out []Tensor) (Result, error) {
	if b.w != nil {
		return b.w.run(ctx, deadline, in, nil, out)
	}
	for {
		res, err := b.runOn(ctx, b.cur.Load(), deadline, in, out)
		if err != errReplaced {
			return res, err
		}
	}
}

// runOn is Run on the sessions of g; errReplaced when g went out of
// service before the run took one of them. The native call is handed to
// the session's goroutine, so that the caller can stop waiting at the
// deadline or when ctx ends.
func (b *Backend) runOn(ctx context.Context, g *sessionSet, deadline time.Time, in, out []Tensor) (Result, error) {
	s, n, t0, err := b.begin(ctx, g, deadline, in, nil, out)
	if s == nil {
		return Result{}, err
	}
	t1 := time.Now()
	res := Result{Wait: t1.Sub(t0)}
	s.state.Store(slotRunning)
	b.inFlight.Add(1)
	// Arm the timer first so that the caller parks right after handing the
	// run over: the worker then usually runs on this thread at once.
	s.timer.Reset(deadline.Sub(t1))
	s.start <- struct{}{}
	select {
	case err = <-s.done:
		s.timer.Stop()
	case <-s.timer.C:
		if gaveUp := s.abandon(); gaveUp {
			return res, &DeadlineError{Backend: g.info.Name, Stage: "running"}
		}
		err = <-s.done
	case <-ctx.Done():
		s.timer.Stop()
		if gaveUp := s.abandon(); gaveUp {
			return res, ctxError(ctx, g.info.Name)
		}
		err = <-s.done
	}
	res.Latency = time.Since(t1)
	return res, b.end(g, s, err, out, n)
}

// begin checks a run's tensors against g's model, takes a free session of
// g and copies the inputs into it: in, or, for a lane, the request's frame
// f (whose tensors the router checked against the contract; their values
// are checked on the copy). It returns the session (nil, with the error,
// when the run cannot start; errReplaced when g went out of service
// first), the number of frames and when the run began to wait.
func (b *Backend) begin(ctx context.Context, g *sessionSet, deadline time.Time, in []Tensor, f *frame, out []Tensor) (*slot, int, time.Time, error) {
	m := &g.info.Model
	var n int
	if f != nil {
		n = f.batch
	} else {
		var err error
		if n, err = checkTensors(m.Inputs, m.MaxBatch, in); err != nil {
			return nil, 0, time.Time{}, err
		}
	}
	if len(out) != len(m.Outputs) {
		return nil, 0, time.Time{}, &InputError{Expected: fmt.Sprintf("%d output tensors", len(m.Outputs)), Got: fmt.Sprint(len(out))}
	}
	if b.closed.Load() {
		return nil, 0, time.Time{}, ErrClosed
	}
	t0 := time.Now()
	if !t0.Before(deadline) {
		return nil, 0, t0, &DeadlineError{Backend: g.info.Name, Stage: "before start"}
	}
	s, err := g.acquire(ctx, deadline)
	if err != nil {
		return nil, 0, t0, err
	}
	s.run = s.runs[n]
	if b.closed.Load() || g.replaced.Load() {
		g.pool <- s
		return nil, 0, t0, errReplaced // Run tries again: ErrClosed, or the set in service
	}
	if f != nil {
		if err := f.copyTo(m.Inputs, s.inF32, s.inRaw); err != nil {
			g.pool <- s
			return nil, 0, t0, err
		}
		return s, n, t0, nil
	}
	for i := range in {
		j := tensorIndex(m.Inputs, in[i].Name, i)
		if s.inF32[j] != nil {
			copy(s.inF32[j], in[i].Data)
		} else {
			copy(s.inRaw[j], in[i].Raw)
		}
	}
	return s, n, t0, nil
}

// end takes the outputs of a run of n frames that returned err from
// session s, then gives s back to g's pool.
func (b *Backend) end(g *sessionSet, s *slot, err error, out []Tensor, n int) error {
	if err != nil {
		s.release()
		return fmt.Errorf("backend %s: run: %w", g.info.Name, err)
	}
	err = copyOutputs(&g.info, s, out, n)
	s.release()
	return err
}

func ctxError(ctx context.Context, name string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &DeadlineError{Backend: name, Stage: "running"}
	}
	return ctx.Err()
}

// copyOutputs copies the outputs of a batch of n frames into out, reusing
// out's buffers where their capacity suffices.
func copyOutputs(info *Info, s *slot, out []Tensor, n int) error {
	var invalid error
	m := &info.Model
	for i := range m.Outputs {
		o := &m.Outputs[i]
		t := &out[i]
		size := o.Size / m.batch() * n
		t.Name, t.DType, t.Shape = o.Name, o.DType, o.shapeFor(n)
		if s.outF32[i] == nil {
			t.Raw = resize(t.Raw, size*o.DType.Size())
			copy(t.Raw, s.outRaw[i])
			continue
		}
		t.Data = resize(t.Data, size)
		copy(t.Data, s.outF32[i])
		if invalid == nil {
			invalid = checkValues(o.Name, t.Data, m.Ranges[i])
		}
	}
	if invalid != nil {
		return fmt.Errorf("backend %s: %w", info.Name, invalid)
	}
	return nil
}

// resize returns b with length n, reusing its memory when its capacity
// suffices.
func resize[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}
