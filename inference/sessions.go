package inference

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// slot states
const (
	slotIdle int32 = iota
	slotRunning
	slotFinished
	slotAbandoned
)

// slot is one ONNX Runtime session with its bound tensors, its run options
// (for Terminate) and the goroutine that makes Backend.Run's native call,
// so that the caller can stop waiting at the deadline while the call goes
// on. A router's lane makes the call on its own goroutine instead
// (direct.go); state decides who finishes a run either way.
type slot struct {
	b    *Backend    // for the backend's counters
	set  *sessionSet // whose pool the slot belongs to
	sess *ort.AdvancedSession
	in   []*ort.CustomDataTensor
	out  []*ort.CustomDataTensor
	// runs[n] runs a batch of n frames (see batch.go): sess for the full
	// batch, views of it bound to batchIn/batchOut for smaller ones. run is
	// the one the worker runs next.
	runs              []*ort.AdvancedSession
	run               *ort.AdvancedSession
	batchIn, batchOut []*ort.CustomDataTensor
	// inRaw and outRaw are the tensors' bytes; inF32 and outF32 view them
	// as float32 where the dtype is float32.
	inRaw, outRaw [][]byte
	inF32, outF32 [][]float32
	opts          *ort.RunOptions
	start         chan struct{}
	done          chan error
	state         atomic.Int32
	timer         *time.Timer
}

func (g *sessionSet) newSlot(b *Backend, data []byte, opts *ort.SessionOptions) (*slot, error) {
	s := &slot{b: b, set: g, start: make(chan struct{}, 1), done: make(chan error, 1)}
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	m := &g.info.Model
	var ins, outs []ort.Value
	for _, t := range m.Inputs {
		x, raw, err := g.newTensor(t)
		if err != nil {
			s.destroy()
			return nil, fmt.Errorf("allocate input %q %v: %w", t.Name, t.Shape, err)
		}
		s.in, s.inRaw, s.inF32 = append(s.in, x), append(s.inRaw, raw), append(s.inF32, f32View(t.DType, raw))
		ins = append(ins, x)
	}
	for _, t := range m.Outputs {
		x, raw, err := g.newTensor(t)
		if err != nil {
			s.destroy()
			return nil, fmt.Errorf("allocate output %q %v: %w", t.Name, t.Shape, err)
		}
		s.out, s.outRaw, s.outF32 = append(s.out, x), append(s.outRaw, raw), append(s.outF32, f32View(t.DType, raw))
		outs = append(outs, x)
	}
	ro, err := ort.NewRunOptions()
	if err != nil {
		s.destroy()
		return nil, fmt.Errorf("create run options: %w", err)
	}
	s.opts = ro
	inNames, outNames := m.names()
	sess, err := ort.NewAdvancedSessionWithONNXData(data, inNames, outNames, ins, outs, opts)
	if err != nil {
		s.destroy()
		return nil, sessionError(m.Path, err)
	}
	s.sess = sess
	s.runs = make([]*ort.AdvancedSession, m.batch()+1)
	s.runs[m.batch()], s.run = sess, sess
	if err := s.batchViews(m); err != nil {
		s.destroy()
		return nil, err
	}
	return s, nil
}

// batchViews binds, for each batch size n below the full one, tensors of n
// frames over the front of the slot's memory to a view of its session.
func (s *slot) batchViews(m *ModelInfo) error {
	for n := 1; n < m.batch(); n++ {
		ins := make([]*ort.CustomDataTensor, len(m.Inputs))
		for i, t := range m.Inputs {
			x, err := ort.NewCustomDataTensor(ort.NewShape(t.shapeFor(n)...), s.inRaw[i][:len(s.inRaw[i])/m.batch()*n], ort.TensorElementDataType(t.DType))
			if err != nil {
				return fmt.Errorf("allocate input %q for a batch of %d: %w", t.Name, n, err)
			}
			s.batchIn, ins[i] = append(s.batchIn, x), x
		}
		outs := make([]*ort.CustomDataTensor, len(m.Outputs))
		for i, t := range m.Outputs {
			x, err := ort.NewCustomDataTensor(ort.NewShape(t.shapeFor(n)...), s.outRaw[i][:len(s.outRaw[i])/m.batch()*n], ort.TensorElementDataType(t.DType))
			if err != nil {
				return fmt.Errorf("allocate output %q for a batch of %d: %w", t.Name, n, err)
			}
			s.batchOut, outs[i] = append(s.batchOut, x), x
		}
		s.runs[n] = sessionView(s.sess, ins, outs)
	}
	return nil
}

// newTensor allocates the bytes of a tensor on the Go heap (which does not
// move them) and wraps them in an ONNX Runtime value.
func newTensor(t TensorInfo) (*ort.CustomDataTensor, []byte, error) {
	return newTensorOn(make([]byte, tensorBytes(t)), t)
}

// newTensor allocates a session's tensor where the set keeps its tensors:
// the Go heap, or a worker's shared memory (alloc).
func (g *sessionSet) newTensor(t TensorInfo) (*ort.CustomDataTensor, []byte, error) {
	if g.alloc == nil {
		return newTensor(t)
	}
	return newTensorOn(g.alloc(tensorBytes(t)), t)
}

func tensorBytes(t TensorInfo) int { return max(t.Size*t.DType.Size(), 1) }

func newTensorOn(raw []byte, t TensorInfo) (*ort.CustomDataTensor, []byte, error) {
	x, err := ort.NewCustomDataTensor(ort.NewShape(t.Shape...), raw, ort.TensorElementDataType(t.DType))
	return x, raw, err
}

func f32View(d DType, raw []byte) []float32 {
	if d.normal() != Float32 || len(raw) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), len(raw)/4)
}

func (s *slot) destroy() {
	if s.sess != nil {
		s.sess.Destroy() // and with it every view in runs
	}
	for _, ts := range [][]*ort.CustomDataTensor{s.in, s.out, s.batchIn, s.batchOut} {
		for _, t := range ts {
			t.Destroy()
		}
	}
	if s.opts != nil {
		s.opts.Destroy()
	}
}

// work makes the native calls for one slot until the slot's start channel is
// closed. When the caller has given up on a run (slotAbandoned), the slot is
// returned to the pool here, once the native call is over, so a session is
// never reused or destroyed while ONNX Runtime still runs on it.
func (s *slot) work() {
	defer s.set.workers.Done()
	for range s.start {
		err := s.run.RunWithOptions(s.opts)
		s.b.inFlight.Add(-1)
		if s.state.CompareAndSwap(slotRunning, slotFinished) {
			s.done <- err
			continue
		}
		// Abandoned: the caller set Terminate before marking the slot, so
		// clearing the flag now cannot race with it.
		s.opts.UnsetTerminate()
		s.state.Store(slotIdle)
		s.set.pool <- s
	}
}

// abandon gives up on the slot's run: it asks ONNX Runtime to stop, then
// tries to hand the slot to the worker. It reports false when the run
// finished first, in which case the caller still owns the slot and must take
// the result from done.
func (s *slot) abandon() bool {
	s.opts.Terminate()
	if s.state.CompareAndSwap(slotRunning, slotAbandoned) {
		s.b.abandoned.Add(1)
		return true
	}
	s.opts.UnsetTerminate()
	return false
}

func (s *slot) release() {
	s.state.Store(slotIdle)
	s.set.pool <- s
}

// acquire takes a free session, waiting for one until the deadline, or
// until the set is retired (errReplaced).
func (g *sessionSet) acquire(ctx context.Context, deadline time.Time) (*slot, error) {
	select {
	case s := <-g.pool:
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
	case s := <-g.pool:
		return s, nil
	case <-g.retiring:
		return nil, errReplaced
	case <-t.C:
		return nil, &DeadlineError{Backend: g.info.Name, Stage: "queued"}
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &DeadlineError{Backend: g.info.Name, Stage: "queued"}
		}
		return nil, ctx.Err()
	}
}

// waitTimers are reused by runs that wait for a free session.
var waitTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}
