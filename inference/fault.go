package inference

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Runner is what the router needs of a backend. *Backend and *Faulty
// implement it.
type Runner interface {
	Run(ctx context.Context, deadline time.Time, in, out []Tensor) (Result, error)
	Info() Info
}

// FaultKind names an injected fault.
type FaultKind string

// Injectable faults.
const (
	FaultNone FaultKind = ""
	// FaultHang: every run hangs until its deadline or context ends, like a
	// run ONNX Runtime can still terminate.
	FaultHang FaultKind = "hang"
	// FaultStuck: the first run never returns, like a hung GPU kernel: it
	// holds the backend until the fault is cleared, and every later run
	// waits for it and fails at its deadline, as on a backend whose only
	// session is stuck.
	FaultStuck FaultKind = "stuck"
	// FaultLatency adds Latency (plus up to Jitter) before the run.
	FaultLatency FaultKind = "latency"
	// FaultError makes runs fail with ErrInjected.
	FaultError FaultKind = "error"
	// FaultNaN runs the model, then replaces the first output element with
	// NaN (reported as an *InvalidOutputError, as a real NaN would be).
	FaultNaN FaultKind = "nan"
	// FaultWrong runs the model, then adds Offset to every float32 output
	// element, clamped to its declared range: a wrong but plausible answer
	// that only comparison with another backend can catch.
	FaultWrong FaultKind = "wrong"
	// FaultCrash, FaultWedge and FaultLeak hit a backend's worker process
	// (isolation: process) from its next run on, and that worker only:
	// FaultCrash makes it abort under the run; FaultWedge makes the run's
	// native call never return and ignore Terminate, like a hung GPU
	// kernel; FaultLeak makes its memory grow by 16 MiB every 20ms until
	// its memory limit ends it. The daemon then kills or reaps it and
	// starts a fresh one.
	FaultCrash FaultKind = "crash"
	FaultWedge FaultKind = "wedge"
	FaultLeak  FaultKind = "leak"
)

// ParseFaultKind reads a fault name; "none" and "" clear.
func ParseFaultKind(s string) (FaultKind, error) {
	switch k := FaultKind(s); k {
	case FaultNone, FaultHang, FaultStuck, FaultLatency, FaultError, FaultNaN, FaultWrong, FaultCrash, FaultWedge, FaultLeak:
		return k, nil
	case "none", "clear":
		return FaultNone, nil
	}
	return "", fmt.Errorf("unknown fault %q (want hang, stuck, latency, error, nan, wrong, crash, wedge, leak or none)", s)
}

// Fault is one injected fault.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// Probability is the share of runs affected, in (0,1]; 0 means every
	// run. With FaultLatency and a probability below 1 it gives random
	// spikes.
	Probability float64       `json:"probability,omitempty"`
	Latency     time.Duration `json:"latency,omitempty"`
	Jitter      time.Duration `json:"jitter,omitempty"`
	Offset      float32       `json:"offset,omitempty"`
}

// Validate checks the fault's fields.
func (f Fault) Validate() error {
	if _, err := ParseFaultKind(string(f.Kind)); err != nil {
		return err
	}
	if f.Probability < 0 || f.Probability > 1 || math.IsNaN(f.Probability) {
		return fmt.Errorf("fault probability %v: want a value in [0,1]", f.Probability)
	}
	if f.Latency < 0 || f.Jitter < 0 {
		return fmt.Errorf("fault latency %v and jitter %v must not be negative", f.Latency, f.Jitter)
	}
	if f.Kind == FaultLatency && f.Latency == 0 && f.Jitter == 0 {
		return errors.New("latency fault with no latency: give latency or jitter")
	}
	if f.Kind == FaultWrong && (f.Offset == 0 || math.IsNaN(float64(f.Offset))) {
		return errors.New("wrong-output fault needs a non-zero offset")
	}
	return nil
}

// ErrInjected is the error of an injected FaultError.
var ErrInjected = errors.New("injected fault")

// Faulty wraps a Runner with faults that drills and tests switch at runtime.
// With no fault set it adds one atomic load to a run.
type Faulty struct {
	r     Runner
	fault atomic.Pointer[Fault]

	mu    sync.Mutex
	stuck chan struct{} // closed when a stuck fault is cleared; nil when none
	held  bool          // a stuck run holds the backend
}

// NewFaulty wraps r with no fault set.
func NewFaulty(r Runner) *Faulty { return &Faulty{r: r} }

// Inject sets the fault, replacing any other. A worker fault (crash,
// wedge, leak) goes to the worker process of the backend under f, and
// clears the wrapper's own fault; a backend that runs in-process refuses
// it.
func (f *Faulty) Inject(ft Fault) error {
	if err := ft.Validate(); err != nil {
		return err
	}
	if ft.Kind.worker() {
		b := backendOf(f.r)
		if b == nil {
			return fmt.Errorf("fault %s needs a backend in a worker process; %T is none", ft.Kind, f.r)
		}
		f.fault.Store(nil)
		f.release()
		return b.injectWorkerFault(ft.Kind)
	}
	f.release()
	if ft.Kind == FaultNone {
		f.fault.Store(nil)
		return nil
	}
	if ft.Kind == FaultStuck {
		f.mu.Lock()
		f.stuck = make(chan struct{})
		f.mu.Unlock()
	}
	f.fault.Store(&ft)
	return nil
}

// Clear removes the fault; a stuck run is let go, and a worker fault is
// disarmed (a wedged run stays wedged, leaked memory stays leaked).
func (f *Faulty) Clear() {
	f.fault.Store(nil)
	f.release()
	if b := backendOf(f.r); b != nil {
		b.clearWorkerFault()
	}
}

func (f *Faulty) release() {
	f.mu.Lock()
	if f.stuck != nil {
		close(f.stuck)
		f.stuck = nil
	}
	f.held = false
	f.mu.Unlock()
}

// Fault returns the fault in force.
func (f *Faulty) Fault() Fault {
	if p := f.fault.Load(); p != nil {
		return *p
	}
	return Fault{}
}

// Info describes the wrapped backend.
func (f *Faulty) Info() Info { return f.r.Info() }

// Unwrap returns the wrapped runner.
func (f *Faulty) Unwrap() Runner { return f.r }

// Run runs the wrapped backend with the fault in force applied.
func (f *Faulty) Run(ctx context.Context, deadline time.Time, in, out []Tensor) (Result, error) {
	return f.run(ctx, deadline, in, nil, out, nil)
}

// runHere is Run for a router's lane: the fault in force is applied on the
// lane's goroutine, and the wrapped backend's native call, when it is made,
// is made there too (see laneRunner).
func (f *Faulty) runHere(deadline time.Time, fr *frame, out []Tensor, w *runWatch) (Result, error) {
	return f.run(context.Background(), deadline, nil, fr, out, w)
}

// inner runs the wrapped backend: on the calling goroutine when w is set
// (the router's lanes use Faulty this way only over a laneRunner: runHere
// with the request's frame fr), through its Run of in otherwise.
func (f *Faulty) inner(ctx context.Context, deadline time.Time, in []Tensor, fr *frame, out []Tensor, w *runWatch) (Result, error) {
	if w != nil {
		if lr, ok := f.r.(laneRunner); ok {
			return lr.runHere(deadline, fr, out, w)
		}
	}
	return f.r.Run(ctx, deadline, in, out)
}

// run applies the fault in force around the wrapped backend's run; w is
// nil for Run. An errAbandoned from the wrapped run goes back unchanged,
// and nothing of the run is touched after it.
func (f *Faulty) run(ctx context.Context, deadline time.Time, in []Tensor, fr *frame, out []Tensor, w *runWatch) (Result, error) {
	ft := f.fault.Load()
	if ft == nil || (ft.Probability > 0 && ft.Probability < 1 && rand.Float64() >= ft.Probability) {
		return f.inner(ctx, deadline, in, fr, out, w)
	}
	name := f.r.Info().Name
	switch ft.Kind {
	case FaultHang:
		return Result{}, waitUntil(ctx, deadline, nil, name, "running")
	case FaultStuck:
		f.mu.Lock()
		stuck, stage := f.stuck, "queued"
		if !f.held {
			f.held, stage = true, "running"
		}
		f.mu.Unlock()
		if stuck == nil { // cleared meanwhile
			return f.inner(ctx, deadline, in, fr, out, w)
		}
		if err := waitUntil(ctx, deadline, stuck, name, stage); err != nil {
			return Result{}, err
		}
		return f.inner(ctx, deadline, in, fr, out, w)
	case FaultLatency:
		d := ft.Latency
		if ft.Jitter > 0 {
			d += rand.N(ft.Jitter)
		}
		t0 := time.Now()
		if t0.Add(d).After(deadline) {
			return Result{}, waitUntil(ctx, deadline, nil, name, "running")
		}
		if err := waitUntil(ctx, t0.Add(d), nil, name, "running"); !errors.Is(err, ErrDeadline) {
			return Result{}, err
		}
		res, err := f.inner(ctx, deadline, in, fr, out, w)
		res.Latency = time.Since(t0) - res.Wait
		return res, err
	case FaultError:
		return Result{}, fmt.Errorf("backend %s: %w", name, ErrInjected)
	case FaultNaN:
		res, err := f.inner(ctx, deadline, in, fr, out, w)
		if err != nil {
			return res, err
		}
		for i := range out {
			if len(out[i].Data) > 0 {
				out[i].Data[0] = float32(math.NaN())
				return res, fmt.Errorf("backend %s: %w", name, &InvalidOutputError{Output: out[i].Name, Index: 0, Value: out[i].Data[0], Reason: InvalidNaN})
			}
		}
		return res, nil
	case FaultWrong:
		res, err := f.inner(ctx, deadline, in, fr, out, w)
		if err != nil {
			return res, err
		}
		ranges := f.r.Info().Model.Ranges
		for i := range out {
			for j := range out[i].Data {
				v := out[i].Data[j] + ft.Offset
				if i < len(ranges) && len(ranges[i]) > 0 {
					r := ranges[i][0]
					if len(ranges[i]) > 1 {
						r = ranges[i][j]
					}
					v = min(max(v, r.Min), r.Max)
				}
				out[i].Data[j] = v
			}
		}
		return res, nil
	}
	return f.inner(ctx, deadline, in, fr, out, w)
}

// waitUntil blocks until t, ctx's end, or release is closed (nil when there
// is none). It returns a *DeadlineError at t, ctx's error when ctx ends, and
// nil when released.
func waitUntil(ctx context.Context, t time.Time, release <-chan struct{}, name, stage string) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return &DeadlineError{Backend: name, Stage: stage}
	case <-release:
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &DeadlineError{Backend: name, Stage: stage}
		}
		return ctx.Err()
	}
}

// worker reports whether k is a fault of a worker process.
func (k FaultKind) worker() bool { return k == FaultCrash || k == FaultWedge || k == FaultLeak }

// backendOf finds the *Backend under r, through wrappers; nil if none.
func backendOf(r Runner) *Backend {
	for r != nil {
		if b, ok := r.(*Backend); ok {
			return b
		}
		u, ok := r.(unwrapper)
		if !ok {
			return nil
		}
		r = u.Unwrap()
	}
	return nil
}
