package inference

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// Config describes one backend: a model on an execution provider.
type Config struct {
	// Name identifies the backend in errors and status ("primary", …).
	Name string `yaml:"name" json:"name"`
	// ModelPath is the .onnx file.
	ModelPath string `yaml:"model" json:"model"`
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
	InputShapes map[string][]int64 `yaml:"input_shapes" json:"input_shapes,omitempty"`
	// MaxBatch above 1 lets a request carry up to MaxBatch frames on the
	// first axis of every input, for a model whose inputs and outputs have
	// a dynamic first axis (a model with a fixed one fails to load). 0 or 1:
	// one shape, as InputShapes and the model say.
	MaxBatch int `yaml:"max_batch" json:"max_batch,omitempty"`
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
// Steady-state runs allocate nothing on the Go heap.
type Backend struct {
	info  Info
	pool  chan *slot
	slots []*slot

	closed    atomic.Bool
	inFlight  atomic.Int32 // native runs not yet returned
	abandoned atomic.Int64 // runs whose caller gave up at the deadline
	workers   sync.WaitGroup
	closeMu   sync.Mutex
	held      int // slots taken out of the pool by Close
	destroyed bool
}

// slot states
const (
	slotIdle int32 = iota
	slotRunning
	slotFinished
	slotAbandoned
)

// slot is one ONNX Runtime session with its bound tensors, its run options
// (for Terminate) and the goroutine that makes the native call, so that the
// caller can stop waiting at the deadline while the call goes on.
type slot struct {
	b    *Backend
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

// Load reads the model, creates its sessions on the configured provider,
// warms them up and returns a backend ready to serve. Init must have
// succeeded. Errors wrap ErrBadModel or ErrProviderUnavailable where those
// apply and always name the model file.
func Load(cfg Config) (*Backend, error) {
	if !initialized() {
		return nil, ErrNotInitialized
	}
	if cfg.Name == "" {
		cfg.Name = strings.TrimSuffix(baseName(cfg.ModelPath), ".onnx")
	}
	if cfg.Sessions <= 0 {
		cfg.Sessions = 1
	}
	if cfg.WarmupRuns == 0 {
		cfg.WarmupRuns = 3
	}
	if cfg.MaxBatch < 0 || cfg.MaxBatch > MaxBatchLimit {
		return nil, fmt.Errorf("backend %s: max_batch %d: want 0 or 1 (no batches) up to %d", cfg.Name, cfg.MaxBatch, MaxBatchLimit)
	}
	if cfg.MaxBatch > 1 {
		if err := checkSessionLayout(); err != nil {
			return nil, fmt.Errorf("backend %s: max_batch %d: %w", cfg.Name, cfg.MaxBatch, err)
		}
	}
	data, err := readModel(cfg.ModelPath)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	model, err := describeModel(cfg.ModelPath, data, cfg.InputShapes, cfg.MaxBatch)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	opts, err := NewSessionOptions(cfg.Provider, cfg.Threads, cfg.TensorRT)
	if err != nil {
		return nil, fmt.Errorf("backend %s (model %s): %w", cfg.Name, cfg.ModelPath, err)
	}
	defer opts.Destroy()
	if err := resolveOutputShapes(&model, data, opts); err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	if err := model.readRanges(); err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	if err := model.readInputRanges(); err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	model.setBatches()
	b := &Backend{
		info: Info{Name: cfg.Name, Provider: cfg.Provider.String(), Model: model, Sessions: cfg.Sessions},
		pool: make(chan *slot, cfg.Sessions),
	}
	for range cfg.Sessions {
		s, err := b.newSlot(data, opts)
		if err != nil {
			b.destroy()
			return nil, fmt.Errorf("backend %s (model %s on %s): %w", cfg.Name, cfg.ModelPath, cfg.Provider, err)
		}
		b.slots = append(b.slots, s)
	}
	if err := b.warmUp(cfg.WarmupRuns); err != nil {
		b.destroy()
		return nil, fmt.Errorf("backend %s (model %s on %s): warm-up: %w", cfg.Name, cfg.ModelPath, cfg.Provider, err)
	}
	for _, s := range b.slots {
		b.workers.Add(1)
		go s.work()
		b.pool <- s
	}
	return b, nil
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// resolveOutputShapes settles dynamic output axes by running the model once
// on the fixed input shapes and reading what comes out. A model that takes
// batches runs once more with one frame, to check that its outputs carry the
// batch on their first axis.
func resolveOutputShapes(m *ModelInfo, data []byte, opts *ort.SessionOptions) error {
	dynamic := m.MaxBatch > 1
	for _, o := range m.Outputs {
		for _, d := range o.Shape {
			dynamic = dynamic || d <= 0
		}
	}
	if !dynamic {
		for i := range m.Outputs {
			m.Outputs[i].Size = int(ort.Shape(m.Outputs[i].Shape).FlattenedSize())
		}
		return nil
	}
	inNames, outNames := m.names()
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(data, inNames, outNames, opts)
	if err != nil {
		return sessionError(m.Path, err)
	}
	defer sess.Destroy()
	full, err := trialRun(sess, m, m.Inputs)
	if err != nil {
		return err
	}
	if m.MaxBatch > 1 {
		ones := make([]TensorInfo, len(m.Inputs))
		for i, in := range m.Inputs {
			ones[i] = in
			ones[i].Shape = append([]int64{1}, in.Shape[1:]...)
			ones[i].Size = in.Size / m.MaxBatch
		}
		one, err := trialRun(sess, m, ones)
		if err != nil {
			return err
		}
		if err := m.checkBatchOutputs(full, one); err != nil {
			return err
		}
	}
	for i, shape := range full {
		m.Outputs[i].Shape = []int64(shape)
		m.Outputs[i].Size = int(shape.FlattenedSize())
	}
	return nil
}

// trialRun runs the model on zeros of the given input shapes and returns
// the output shapes.
func trialRun(sess *ort.DynamicAdvancedSession, m *ModelInfo, inputs []TensorInfo) ([]ort.Shape, error) {
	ins := make([]ort.Value, len(inputs))
	for i, in := range inputs {
		t, _, err := newTensor(in)
		if err != nil {
			return nil, fmt.Errorf("model %s: input %q: %w", m.Path, in.Name, err)
		}
		defer t.Destroy()
		ins[i] = t
	}
	outs := make([]ort.Value, len(m.Outputs))
	if err := sess.Run(ins, outs); err != nil {
		return nil, fmt.Errorf("model %s: trial run to learn output shapes: %w", m.Path, err)
	}
	shapes := make([]ort.Shape, len(outs))
	for i, v := range outs {
		defer v.Destroy()
		shapes[i] = v.GetShape().Clone()
	}
	return shapes, nil
}

func (m *ModelInfo) names() (in, out []string) {
	for _, t := range m.Inputs {
		in = append(in, t.Name)
	}
	for _, t := range m.Outputs {
		out = append(out, t.Name)
	}
	return in, out
}

func sessionError(path string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "disable_cpu_ep_fallback") || strings.Contains(msg, "fallback") {
		return fmt.Errorf("%w: model %s has nodes the GPU provider cannot run, and CPU fallback is off: %v", ErrProviderUnavailable, path, err)
	}
	return fmt.Errorf("%w: create session for model %s: %v", ErrBadModel, path, err)
}

func (b *Backend) newSlot(data []byte, opts *ort.SessionOptions) (*slot, error) {
	s := &slot{b: b, start: make(chan struct{}, 1), done: make(chan error, 1)}
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	m := &b.info.Model
	var ins, outs []ort.Value
	for _, t := range m.Inputs {
		x, raw, err := newTensor(t)
		if err != nil {
			s.destroy()
			return nil, fmt.Errorf("allocate input %q %v: %w", t.Name, t.Shape, err)
		}
		s.in, s.inRaw, s.inF32 = append(s.in, x), append(s.inRaw, raw), append(s.inF32, f32View(t.DType, raw))
		ins = append(ins, x)
	}
	for _, t := range m.Outputs {
		x, raw, err := newTensor(t)
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
	raw := make([]byte, max(t.Size*t.DType.Size(), 1))
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

func (b *Backend) warmUp(runs int) error {
	start := time.Now()
	for i, s := range b.slots {
		for _, d := range s.inF32 {
			fill(d, 0.5)
		}
		for r := 0; r < runs; r++ {
			// Every batch size: ONNX Runtime plans memory (and a GPU
			// provider may pick kernels) per shape on its first run.
			for n := len(s.runs) - 1; n >= 1; n-- {
				t0 := time.Now()
				if err := s.runs[n].Run(); err != nil {
					return fmt.Errorf("session %d run %d (batch of %d): %w", i, r, n, err)
				}
				if i == 0 && r == 0 && n == len(s.runs)-1 {
					b.info.FirstRun = time.Since(t0)
				}
			}
		}
	}
	b.info.Warmup = time.Since(start)
	return nil
}

func fill(d []float32, v float32) {
	for i := range d {
		d[i] = v
	}
}

// work makes the native calls for one slot until the slot's start channel is
// closed. When the caller has given up on a run (slotAbandoned), the slot is
// returned to the pool here, once the native call is over, so a session is
// never reused or destroyed while ONNX Runtime still runs on it.
func (s *slot) work() {
	defer s.b.workers.Done()
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
		s.b.pool <- s
	}
}

// Info describes the backend.
func (b *Backend) Info() Info { return b.info }

// InFlight is the number of native runs not yet returned, including runs
// whose callers have already had their deadline error.
func (b *Backend) InFlight() int { return int(b.inFlight.Load()) }

// Abandoned counts runs whose callers stopped waiting at the deadline.
func (b *Backend) Abandoned() int64 { return b.abandoned.Load() }

// NewOutputs allocates output tensors shaped for this backend, for callers
// that reuse them across requests.
func (b *Backend) NewOutputs() []Tensor {
	outs := make([]Tensor, len(b.info.Model.Outputs))
	for i, o := range b.info.Model.Outputs {
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
	ins := make([]Tensor, len(b.info.Model.Inputs))
	for i, o := range b.info.Model.Inputs {
		ins[i] = newBuffer(o)
	}
	return ins
}

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
func (b *Backend) Run(ctx context.Context, deadline time.Time, in, out []Tensor) (Result, error) {
	var res Result
	n, err := b.checkInputs(in)
	if err != nil {
		return res, err
	}
	if len(out) != len(b.info.Model.Outputs) {
		return res, &InputError{Expected: fmt.Sprintf("%d output tensors", len(b.info.Model.Outputs)), Got: fmt.Sprint(len(out))}
	}
	if b.closed.Load() {
		return res, ErrClosed
	}
	t0 := time.Now()
	if !t0.Before(deadline) {
		return res, &DeadlineError{Backend: b.info.Name, Stage: "before start"}
	}
	s, err := b.acquire(ctx, deadline)
	if err != nil {
		return res, err
	}
	s.run = s.runs[n]
	if b.closed.Load() {
		b.pool <- s
		return res, ErrClosed
	}
	for i := range in {
		j := b.inputIndex(in[i].Name, i)
		if s.inF32[j] != nil {
			copy(s.inF32[j], in[i].Data)
		} else {
			copy(s.inRaw[j], in[i].Raw)
		}
	}
	t1 := time.Now()
	res.Wait = t1.Sub(t0)
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
			return res, &DeadlineError{Backend: b.info.Name, Stage: "running"}
		}
		err = <-s.done
	case <-ctx.Done():
		s.timer.Stop()
		if gaveUp := s.abandon(); gaveUp {
			return res, ctxError(ctx, b.info.Name)
		}
		err = <-s.done
	}
	res.Latency = time.Since(t1)
	if err != nil {
		s.release()
		return res, fmt.Errorf("backend %s: run: %w", b.info.Name, err)
	}
	err = b.copyOutputs(s, out, n)
	s.release()
	return res, err
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
	s.b.pool <- s
}

func ctxError(ctx context.Context, name string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &DeadlineError{Backend: name, Stage: "running"}
	}
	return ctx.Err()
}

// acquire takes a free session, waiting for one until the deadline.
func (b *Backend) acquire(ctx context.Context, deadline time.Time) (*slot, error) {
	select {
	case s := <-b.pool:
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
	case s := <-b.pool:
		return s, nil
	case <-t.C:
		return nil, &DeadlineError{Backend: b.info.Name, Stage: "queued"}
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &DeadlineError{Backend: b.info.Name, Stage: "queued"}
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

// inputIndex maps a request tensor to the model input it feeds.
func (b *Backend) inputIndex(name string, i int) int {
	return tensorIndex(b.info.Model.Inputs, name, i)
}

// tensorIndex finds name among want; requests usually list tensors in model
// order, so position i is tried first.
func tensorIndex(want []TensorInfo, name string, i int) int {
	if i < len(want) && want[i].Name == name {
		return i
	}
	for j := range want {
		if want[j].Name == name {
			return j
		}
	}
	return -1
}

func (b *Backend) checkInputs(in []Tensor) (int, error) {
	return checkTensors(b.info.Model.Inputs, b.info.Model.MaxBatch, in)
}

// checkTensors checks a request's tensors against a model's inputs: each
// input once, by name, with its dtype, shape and length. It returns the
// number of frames: with maxBatch above 1, the first axis of every input,
// 1 to maxBatch and the same for all; else 1.
func checkTensors(want []TensorInfo, maxBatch int, in []Tensor) (int, error) {
	if len(in) != len(want) {
		return 0, &InputError{Expected: fmt.Sprintf("%d input tensors (%s)", len(want), tensorNames(want)), Got: fmt.Sprint(len(in))}
	}
	batch := 0
	for i := range in {
		n, err := checkTensor(want, maxBatch, in, i)
		if err != nil {
			return 0, err
		}
		if batch != 0 && n != batch {
			return 0, &InputError{Input: in[i].Name, Expected: fmt.Sprintf("a batch of %d frames, as input %q has", batch, in[0].Name), Got: fmt.Sprintf("shape %v", in[i].Shape)}
		}
		batch = n
	}
	return batch, nil
}

// checkTensor checks in[i] and returns its number of frames.
func checkTensor(want []TensorInfo, maxBatch int, in []Tensor, i int) (int, error) {
	t := &in[i]
	j := tensorIndex(want, t.Name, i)
	if j < 0 {
		return 0, &InputError{Input: t.Name, Expected: "one of the model's inputs (" + tensorNames(want) + ")", Got: "an unknown name"}
	}
	for k := range i {
		if in[k].Name == t.Name {
			return 0, &InputError{Input: t.Name, Expected: "each input once", Got: "it twice"}
		}
	}
	w := &want[j]
	if t.DType.normal() != w.DType {
		return 0, &InputError{Input: t.Name, Expected: "dtype " + w.DType.String(), Got: "dtype " + t.DType.String()}
	}
	n, size := 1, w.Size
	if maxBatch > 1 {
		if len(t.Shape) > 0 && t.Shape[0] >= 1 && t.Shape[0] <= int64(maxBatch) {
			n = int(t.Shape[0])
		}
		if !sameShape(t.Shape, w.shapeFor(n)) {
			return 0, &InputError{Input: t.Name, Expected: fmt.Sprintf("shape [N%s] with a batch of N = 1 to %d frames", dims(w.Shape[1:]), maxBatch), Got: fmt.Sprintf("shape %v", t.Shape)}
		}
		size = w.Size / maxBatch * n
	} else if !sameShape(t.Shape, w.Shape) {
		return 0, &InputError{Input: t.Name, Expected: fmt.Sprintf("shape %v%s", w.Shape, batchHint(w, t.Shape)), Got: fmt.Sprintf("shape %v", t.Shape)}
	}
	if w.DType == Float32 {
		if len(t.Data) != size {
			return 0, &InputError{Input: t.Name, Expected: fmt.Sprintf("%d float32 values for shape %v", size, t.Shape), Got: fmt.Sprint(len(t.Data))}
		}
	} else if len(t.Raw) != size*w.DType.Size() {
		return 0, &InputError{Input: t.Name, Expected: fmt.Sprintf("%d bytes of %s for shape %v", size*w.DType.Size(), w.DType, t.Shape), Got: fmt.Sprintf("%d bytes", len(t.Raw))}
	}
	return n, nil
}

// batchHint explains a request that differs from a model without batches
// on the first axis only.
func batchHint(w *TensorInfo, got []int64) string {
	if len(got) != len(w.Shape) || len(got) == 0 || !sameShape(got[1:], w.Shape[1:]) {
		return ""
	}
	if len(w.DeclaredShape) > 0 && w.DeclaredShape[0] <= 0 {
		return " (the model's first axis is dynamic, but max_batch is not set: one shape only)"
	}
	return fmt.Sprintf(" (the model's first axis is fixed at %d: it takes no batches)", w.Shape[0])
}

func dims(d []int64) string {
	var sb strings.Builder
	for _, x := range d {
		fmt.Fprintf(&sb, " %d", x)
	}
	return sb.String()
}

func tensorNames(ts []TensorInfo) string {
	var sb strings.Builder
	for i, t := range ts {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s %v", t.Name, t.Shape)
	}
	return sb.String()
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// copyOutputs copies the outputs of a batch of n frames into out, reusing
// out's buffers where their capacity suffices.
func (b *Backend) copyOutputs(s *slot, out []Tensor, n int) error {
	var invalid error
	m := &b.info.Model
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
		return fmt.Errorf("backend %s: %w", b.info.Name, invalid)
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

// Close stops taking runs, waits until no native run is in flight (or ctx
// ends) and then destroys the sessions. A session is never destroyed while
// ONNX Runtime runs on it: if ctx ends first, Close returns an error and
// leaves the sessions alone (a hung run keeps its session for good).
func (b *Backend) Close(ctx context.Context) error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.destroyed {
		return nil
	}
	b.closed.Store(true)
	// Collect every slot; what was collected stays collected if ctx ends,
	// so a later Close carries on where this one stopped.
	for b.held < len(b.slots) {
		select {
		case <-b.pool:
			b.held++
		case <-ctx.Done():
			return fmt.Errorf("backend %s: close: %d of %d sessions still running after %v; not destroyed", b.info.Name, len(b.slots)-b.held, len(b.slots), ctx.Err())
		}
	}
	for _, s := range b.slots {
		close(s.start)
	}
	b.workers.Wait()
	b.destroy()
	return nil
}

func (b *Backend) destroy() {
	for _, s := range b.slots {
		s.destroy()
	}
	b.destroyed = true
}
