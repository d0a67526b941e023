package inference

import (
	"errors"
	"sync/atomic"
)

// A request's inputs reach a session with one copy
//
// The router does not copy a request's inputs into buffers of its own: the
// request's frame holds the caller's tensors (in a supervisor's shared
// memory, or the socket's read buffer), and each lane copies them straight
// into its session's input — in the daemon's memory, or in the worker's
// shared memory — and checks the copy's values there, where the caller can
// no longer change them. The caller gets its tensors back when Infer
// returns, so the frame is closed before that:
//
//   - a lane copies only between enter and leave; enter fails once the
//     frame is closed, and the lane then does not run (errFrameGone);
//   - close marks the frame closed and waits for the copies in progress:
//     at most one per lane, each a memmove of the frame.
//
// frame.state holds the copies in progress and, in its top bit, closed.

const frameClosed = int64(1) << 62

// frame is what a request's lanes copy its inputs from.
type frame struct {
	// in are the request's inputs in the contract's order (Router.Inputs):
	// the caller's tensors, or a canary's own.
	in []Tensor
	// batch is the number of frames the inputs carry.
	batch int
	// checks, per input, are the router's value checks; nil for a canary,
	// whose inputs are the router's own pattern.
	checks  []valueCheck
	state   atomic.Int64
	drained chan struct{} // close waits on it for the last copy to leave
}

// errFrameGone tells a lane that the request was answered before the lane
// began to copy its inputs: the inputs are the caller's again, and the run
// does not happen. It never leaves the package.
var errFrameGone = errors.New("the request was answered before this run copied its inputs")

func newFrame(n int) frame {
	return frame{in: make([]Tensor, n), drained: make(chan struct{}, 1)}
}

// open readies f for a new request; no lane of the last one may be in
// its copy (the request is back in the pool only when every lane is over).
func (f *frame) open(checks []valueCheck, batch int) {
	f.checks, f.batch = checks, batch
	f.state.Store(0)
}

func (f *frame) enter() bool {
	for {
		v := f.state.Load()
		if v&frameClosed != 0 {
			return false
		}
		if f.state.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

func (f *frame) leave() {
	if f.state.Add(-1) == frameClosed {
		f.drained <- struct{}{} // the last copy of a closed frame: close waits
	}
}

// close ends the lanes' access to the inputs: a lane that has not entered
// will not, and close returns once the copies in progress are over.
func (f *frame) close() {
	if f.state.Or(frameClosed)&^frameClosed != 0 {
		<-f.drained
	}
}

// copyTo copies the inputs into a session's input tensors (dstF32 for
// float32 inputs, dstRaw for the others, in the order of want, the model's
// inputs), then checks the values of the copy. It returns errFrameGone when
// the frame was closed first, an *InputError when the copy holds values the
// checks refuse.
func (f *frame) copyTo(want []TensorInfo, dstF32 [][]float32, dstRaw [][]byte) error {
	if !f.enter() {
		return errFrameGone
	}
	for i := range f.in {
		src := &f.in[i]
		j := tensorIndex(want, src.Name, i)
		if dstF32[j] != nil {
			copy(dstF32[j], src.Data)
		} else {
			copy(dstRaw[j], src.Raw)
		}
	}
	f.leave()
	if f.checks == nil {
		return nil
	}
	for i := range f.in {
		src := &f.in[i]
		j := tensorIndex(want, src.Name, i)
		c := Tensor{Name: src.Name, DType: src.DType, Shape: src.Shape}
		if dstF32[j] != nil {
			c.Data = dstF32[j][:len(src.Data)]
		} else {
			c.Raw = dstRaw[j][:len(src.Raw)]
		}
		if err := f.checks[i].checkValues(&c); err != nil {
			return err
		}
	}
	return nil
}

// copyInto copies the inputs into tensors of the caller's (the lane's own,
// for a Runner that takes []Tensor), shaped as the inputs are; the same
// rules as copyTo.
func (f *frame) copyInto(dst []Tensor) error {
	if !f.enter() {
		return errFrameGone
	}
	for i := range f.in {
		src, d := &f.in[i], &dst[i]
		d.Name, d.DType, d.Shape = src.Name, src.DType, src.Shape
		d.Data = d.Data[:len(src.Data)]
		copy(d.Data, src.Data)
		d.Raw = d.Raw[:len(src.Raw)]
		copy(d.Raw, src.Raw)
	}
	f.leave()
	for i := range dst {
		if f.checks == nil {
			break
		}
		if err := f.checks[i].checkValues(&dst[i]); err != nil {
			return err
		}
	}
	return nil
}
