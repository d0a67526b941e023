package inference

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one backend: a model on an execution provider.
type Config struct {
	// Name identifies the backend in errors and status ("primary", …).
	// It, ModelPath, Provider, InputShapes and MaxBatch are the loader's
	// to set: a configuration file (vigild's models.<rung>) gives the
	// options below them.
	Name string `yaml:"-" json:"name"`
	// ModelPath is the .onnx file.
	ModelPath string `yaml:"-" json:"model"`
	// Provider is where the model runs; the zero value is the CPU.
	Provider Provider        `yaml:"-" json:"-"`
	Threads  ThreadOptions   `yaml:"threads" json:"threads"`
	TensorRT TensorRTOptions `yaml:"tensorrt" json:"tensorrt"`
	// Sessions is how many runs may be in flight at once; each is an ONNX
	// Runtime session of its own with preallocated tensors. 0 means 1.
	Sessions int `yaml:"sessions" json:"sessions"`
	// WarmupRuns per session before the backend is offered. 0 means 3;
	// negative means none.
	WarmupRuns int `yaml:"warmup_runs" json:"warmup_runs"`
	// InputShapes fixes the dynamic axes of inputs by name; axes left
	// dynamic run with size 1.
	InputShapes map[string][]int64 `yaml:"-" json:"input_shapes,omitempty"`
	// MaxBatch above 1 lets a request carry up to MaxBatch frames on the
	// first axis of every input, for a model whose inputs and outputs have
	// a dynamic first axis (a model with a fixed one fails to load). 0 or 1:
	// one shape, as InputShapes and the model say.
	MaxBatch int `yaml:"-" json:"max_batch,omitempty"`
	// Isolation: the sessions run in the daemon (in-process) or in a
	// worker process that can be killed and replaced (process); the
	// default is process for a GPU provider, in-process for the CPU.
	Isolation Isolation `yaml:"isolation" json:"isolation,omitempty"`
	// Worker tunes the worker process of isolation: process.
	Worker WorkerOptions `yaml:"worker" json:"worker"`
}

// Result describes one successful (or output-invalid) run.
type Result struct {
	// Wait is the time spent waiting for a free session.
	Wait time.Duration
	// Latency is the time the model took, as seen by the caller.
	Latency time.Duration
}

// Info describes a loaded backend.
type Info struct {
	Name     string    `json:"name"`
	Provider string    `json:"provider"`
	Model    ModelInfo `json:"model"`
	Sessions int       `json:"sessions"`
	// Warmup is the total warm-up time of all sessions; FirstRun the time of
	// the very first run (graph optimisation and allocation happen there).
	Warmup   time.Duration `json:"warmup_ns"`
	FirstRun time.Duration `json:"first_run_ns"`
}

// Backend runs one model. It is safe for concurrent use: up to Sessions runs
// proceed at once, others wait for a free session until their deadline.
// Steady-state runs allocate nothing on the Go heap. Replace swaps the model
// it runs for another of the same contract (swap.go).
type Backend struct {
	cfg Config // as Load completed it; Replace loads with it
	// cur is the model runs go to; a run loads it once.
	cur atomic.Pointer[sessionSet]

	closed    atomic.Bool
	inFlight  atomic.Int32 // native runs not yet returned, of every set
	abandoned atomic.Int64 // runs whose caller gave up at the deadline
	replacing atomic.Bool  // a Replace is under way

	mu sync.Mutex // guards retired and the swap of cur against Close
	// retired holds the sets Replace took out of service whose sessions
	// are not destroyed yet: a native run was still using them.
	retired []*sessionSet

	// w runs the sessions in a worker process (isolation: process); nil
	// in-process. Then none of the fields above is used but cfg.
	w *workers
	// arena, in a worker, places the sessions' tensors in the shared
	// memory it announces to the daemon (workerchild.go).
	arena func(m *ModelInfo, sessions int) (func(int) []byte, error)
}

// Info describes the backend and the model it runs now.
func (b *Backend) Info() Info {
	if b.w != nil {
		return b.w.info()
	}
	return b.cur.Load().info
}

// InFlight is the number of native runs not yet returned, including runs
// whose callers have already had their deadline error, and runs on a model
// that Replace has since taken out of service.
func (b *Backend) InFlight() int {
	if b.w != nil {
		return int(b.w.inFlight.Load())
	}
	return int(b.inFlight.Load())
}

// Abandoned counts runs whose callers stopped waiting at the deadline.
func (b *Backend) Abandoned() int64 {
	if b.w != nil {
		return b.w.abandoned.Load()
	}
	return b.abandoned.Load()
}

// NewOutputs allocates output tensors shaped for this backend, for callers
// that reuse them across requests.
func (b *Backend) NewOutputs() []Tensor {
	m := b.Info().Model
	outs := make([]Tensor, len(m.Outputs))
	for i, o := range m.Outputs {
		outs[i] = newBuffer(o)
	}
	return outs
}

func newBuffer(o TensorInfo) Tensor {
	t := Tensor{Name: o.Name, DType: o.DType, Shape: o.Shape}
	if o.DType == Float32 {
		t.Data = make([]float32, o.Size)
	} else {
		t.Raw = make([]byte, o.Size*o.DType.Size())
	}
	return t
}

// NewInputs allocates zeroed input tensors shaped for this backend.
func (b *Backend) NewInputs() []Tensor {
	m := b.Info().Model
	ins := make([]Tensor, len(m.Inputs))
	for i, o := range m.Inputs {
		ins[i] = newBuffer(o)
	}
	return ins
}

// Close stops taking runs, waits until no native run is in flight (or ctx
// ends) and then destroys the sessions, of the model it runs and of any
// model Replace took out of service that was still busy. A session is
// never destroyed while ONNX Runtime runs on it: if ctx ends first, Close
// returns an error and leaves the busy sessions alone (a hung run keeps its
// session for good); called again, it goes on where it stopped.
func (b *Backend) Close(ctx context.Context) error {
	b.closed.Store(true)
	if b.w != nil {
		return b.w.close(ctx)
	}
	b.mu.Lock()
	sets := append([]*sessionSet{b.cur.Load()}, b.retired...)
	b.mu.Unlock()
	for _, g := range sets {
		g.retire() // wakes runs waiting for one of its sessions
		if err := g.close(ctx); err != nil {
			return fmt.Errorf("backend %s: close: %w", b.cfg.Name, err)
		}
	}
	b.dropClosed()
	return nil
}

// dropClosed forgets the retired sets whose sessions are destroyed.
func (b *Backend) dropClosed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.retired[:0]
	for _, g := range b.retired {
		if !g.isDestroyed() {
			kept = append(kept, g)
		}
	}
	clear(b.retired[len(kept):])
	b.retired = kept
}
