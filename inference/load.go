package inference

import (
	"fmt"
	"strings"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// Load reads the model, creates its sessions on the configured provider,
// warms them up and returns a backend ready to serve. Init must have
// succeeded. Errors wrap ErrBadModel or ErrProviderUnavailable where those
// apply and always name the model file.
func Load(cfg Config) (*Backend, error) {
	if !initialized() {
		return nil, ErrNotInitialized
	}
	cfg, err := normalize(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Isolated() {
		return loadWorker(cfg)
	}
	b := &Backend{cfg: cfg}
	g, err := b.load(cfg.ModelPath)
	if err != nil {
		return nil, err
	}
	b.cur.Store(g)
	return b, nil
}

// normalize fills a Config's defaults and checks what Load checks before
// it reads the model.
func normalize(cfg Config) (Config, error) {
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
		return cfg, fmt.Errorf("backend %s: max_batch %d: want 0 or 1 (no batches) up to %d", cfg.Name, cfg.MaxBatch, MaxBatchLimit)
	}
	if cfg.MaxBatch > 1 {
		if err := checkSessionLayout(); err != nil {
			return cfg, fmt.Errorf("backend %s: max_batch %d: %w", cfg.Name, cfg.MaxBatch, err)
		}
	}
	if err := cfg.ValidateIsolation(false); err != nil {
		return cfg, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	cfg.Worker.defaults()
	return cfg, nil
}

// load reads the model at path and makes, warms and starts a set of
// sessions for it with b's configuration, ready to serve. Load uses it for
// the first model, Replace for the next.
func (b *Backend) load(path string) (*sessionSet, error) {
	cfg := b.cfg
	data, err := readModel(path)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	model, err := describeModel(path, data, cfg.InputShapes, cfg.MaxBatch)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	opts, err := NewSessionOptions(cfg.Provider, cfg.Threads, cfg.TensorRT)
	if err != nil {
		return nil, fmt.Errorf("backend %s (model %s): %w", cfg.Name, path, err)
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
	g := newSessionSet(Info{Name: cfg.Name, Provider: cfg.Provider.String(), Model: model, Sessions: cfg.Sessions})
	if b.arena != nil {
		if g.alloc, err = b.arena(&g.info.Model, cfg.Sessions); err != nil {
			return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
		}
	}
	for range cfg.Sessions {
		s, err := g.newSlot(b, data, opts)
		if err != nil {
			g.destroy()
			return nil, fmt.Errorf("backend %s (model %s on %s): %w", cfg.Name, path, cfg.Provider, err)
		}
		g.slots = append(g.slots, s)
	}
	if err := g.warmUp(cfg.WarmupRuns); err != nil {
		g.destroy()
		return nil, fmt.Errorf("backend %s (model %s on %s): warm-up: %w", cfg.Name, path, cfg.Provider, err)
	}
	for _, s := range g.slots {
		g.workers.Add(1)
		go s.work()
		g.pool <- s
	}
	return g, nil
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

func (g *sessionSet) warmUp(runs int) error {
	start := time.Now()
	for i, s := range g.slots {
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
					g.info.FirstRun = time.Since(t0)
				}
			}
		}
	}
	g.info.Warmup = time.Since(start)
	return nil
}

func fill(d []float32, v float32) {
	for i := range d {
		d[i] = v
	}
}
