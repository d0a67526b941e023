package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/demo"
)

type inferenceFlags struct {
	model    string
	library  string
	provider string
	runs     int
	warmup   int
	intra    int
	inter    int
	quick    bool
}

// inferenceAbout is the suite's description in its --help.
const inferenceAbout = `Runs one model through Vigil's inference package and through a bare
onnxruntime_go session with the same provider, threads and inputs,
alternating run by run, and reports both latency distributions, their
ratio, and Go heap allocations per Vigil run.`

// parseInferenceFlags parses the suite's flags, applies --quick and checks
// them.
func parseInferenceFlags(args []string, stderr io.Writer) (inferenceFlags, error) {
	var f inferenceFlags
	fs := flag.NewFlagSet("vigil-bench inference", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.model, "model", "", "model to run (default: build/models/primary.onnx if present, else the demo primary model generated into a temporary directory)")
	fs.StringVar(&f.library, "ort-library", "", "ONNX Runtime shared library (default: $"+inference.LibraryEnv+" or the one `make deps` fetched)")
	fs.StringVar(&f.provider, "provider", "cpu", "execution provider for both sides: cpu, cuda:N or tensorrt:N")
	fs.IntVar(&f.runs, "runs", 2000, "timed runs of each side")
	fs.IntVar(&f.warmup, "warmup", 50, "untimed runs of each side first")
	fs.IntVar(&f.intra, "intra-op", 1, "intra-op threads of each session")
	fs.IntVar(&f.inter, "inter-op", 1, "inter-op threads of each session")
	fs.BoolVar(&f.quick, "quick", false, "a short run (400 timed runs of each side; well under 30 s on a small CPU)")
	if err := parseSuite(fs, "inference", inferenceAbout, args, stderr); err != nil {
		return f, err
	}
	if f.quick {
		f.runs, f.warmup = 400, 20
	}
	if f.runs < 10 {
		return f, fmt.Errorf("--runs %d: need at least 10", f.runs)
	}
	return f, nil
}

func runInference(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseInferenceFlags(args, stderr)
	if err != nil {
		return err
	}
	prov, err := inference.ParseProvider(f.provider)
	if err != nil {
		return fmt.Errorf("--provider: %w", err)
	}
	if err := inference.Init(f.library); err != nil {
		return err
	}
	model, cleanup, err := benchModel(f.model)
	if err != nil {
		return err
	}
	defer cleanup()

	threads := inference.ThreadOptions{IntraOp: f.intra, InterOp: f.inter}
	b, err := inference.Load(inference.Config{Name: "primary", ModelPath: model, Provider: prov, Threads: threads})
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	bare, err := newBareSession(model, b.Info().Model, prov, threads)
	if err != nil {
		return fmt.Errorf("bare baseline: %w", err)
	}
	defer bare.destroy()

	info := b.Info()
	in, out := b.NewInputs(), b.NewOutputs()
	frames := randomFrames(16, info.Model.Inputs[0].Size)
	runVigil := func(frame []float32) (time.Duration, error) {
		in[0].Data = frame
		t0 := time.Now()
		_, err := b.Run(ctx, t0.Add(10*time.Second), in, out)
		return time.Since(t0), err
	}
	runBare := func(frame []float32) (time.Duration, error) {
		t0 := time.Now()
		err := bare.run(frame)
		return time.Since(t0), err
	}

	fmt.Fprintf(stdout, "suite inference: %s (%s %s) on %s, intra-op %d, inter-op %d, ONNX Runtime %s\n",
		model, info.Model.Name, info.Model.Version, prov, f.intra, f.inter, ort.GetVersion())
	fmt.Fprintf(stdout, "warm-up: %v for %d session(s), first run %v\n", info.Warmup.Round(time.Microsecond), info.Sessions, info.FirstRun.Round(time.Microsecond))
	vigil, base, err := alternateRuns(ctx, f, frames, runVigil, runBare)
	if err != nil {
		return err
	}
	allocs, err := allocsPerRun(b, in, out, frames[0], min(f.runs, 200))
	if err != nil {
		return err
	}

	handoff := handoffCost(min(f.runs, 400))

	vp50, vp99 := percentile(vigil, 0.50), percentile(vigil, 0.99)
	bp50, bp99 := percentile(base, 0.50), percentile(base, 0.99)
	fmt.Fprintf(stdout, "%d timed runs each, alternating\n", f.runs)
	fmt.Fprintf(stdout, "%-8s %12s %12s\n", "", "p50", "p99")
	fmt.Fprintf(stdout, "%-8s %12v %12v\n", "bare", bp50.Round(time.Microsecond), bp99.Round(time.Microsecond))
	fmt.Fprintf(stdout, "%-8s %12v %12v\n", "vigil", vp50.Round(time.Microsecond), vp99.Round(time.Microsecond))
	fmt.Fprintf(stdout, "%-8s %12.3f %12.3f\n", "ratio", float64(vp50)/float64(bp50), float64(vp99)/float64(bp99))
	fmt.Fprintf(stdout, "Go heap allocations per Vigil run: %d\n", allocs)
	fmt.Fprintf(stdout, "platform: a hand-off to a parked goroutine and back, as each Vigil run makes, p50 %.1f µs (GOMAXPROCS %d)\n",
		float64(handoff)/float64(time.Microsecond), runtime.GOMAXPROCS(0))
	fmt.Fprintf(stdout, "RESULT suite=inference overhead_p50=%.3f overhead_p99=%.3f bare_p50_us=%.0f allocs_per_run=%d handoff_us=%.1f\n",
		float64(vp50)/float64(bp50), float64(vp99)/float64(bp99), micros(bp50), allocs, float64(handoff)/float64(time.Microsecond))
	return nil
}

// randomFrames makes n frames of size float32s, the same on every run.
func randomFrames(n, size int) [][]float32 {
	frames := make([][]float32, n)
	r := rand.New(rand.NewPCG(42, 42))
	for i := range frames {
		frames[i] = make([]float32, size)
		for j := range frames[i] {
			frames[i][j] = r.Float32()
		}
	}
	return frames
}

// alternateRuns times f.runs runs of each side on the frames in turn,
// after f.warmup untimed ones.
func alternateRuns(ctx context.Context, f inferenceFlags, frames [][]float32, runVigil, runBare func([]float32) (time.Duration, error)) ([]time.Duration, []time.Duration, error) {
	for i := range f.warmup {
		if _, err := runVigil(frames[i%len(frames)]); err != nil {
			return nil, nil, err
		}
		if _, err := runBare(frames[i%len(frames)]); err != nil {
			return nil, nil, err
		}
	}
	vigil := make([]time.Duration, 0, f.runs)
	base := make([]time.Duration, 0, f.runs)
	for i := range f.runs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		frame := frames[i%len(frames)]
		// Alternate which side goes first, so neither always runs on a
		// cache the other warmed.
		first, second := runVigil, runBare
		if i%2 == 1 {
			first, second = runBare, runVigil
		}
		d1, err := first(frame)
		if err != nil {
			return nil, nil, err
		}
		d2, err := second(frame)
		if err != nil {
			return nil, nil, err
		}
		if i%2 == 1 {
			d1, d2 = d2, d1
		}
		vigil, base = append(vigil, d1), append(base, d2)
	}
	return vigil, base, nil
}

// allocsPerRun counts Go heap allocations per Vigil run over n runs the way
// testing.AllocsPerRun does: with GOMAXPROCS at 1, and the average rounded
// down, so that a stray allocation of the runtime itself (a GC worker, a
// timer) in one of n runs does not read as an allocation per run.
func allocsPerRun(b *inference.Backend, in, out []inference.Tensor, frame []float32, n int) (uint64, error) {
	in[0].Data = frame
	ctx := context.Background()
	deadline := time.Now().Add(time.Hour)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if _, err := b.Run(ctx, deadline, in, out); err != nil {
			return 0, err
		}
	}
	runtime.ReadMemStats(&after)
	return (after.Mallocs - before.Mallocs) / uint64(n), nil
}

// handoffCost measures, n times, what the two hand-offs of a Vigil run
// cost on this platform with no model in between: the caller wakes the
// goroutine parked for the slot, which answers at once and wakes the
// caller again. Before each, the caller keeps its CPU busy for a while,
// as a bare run would, so that the runtime's idle threads are asleep
// again. Where another P is idle, Go wakes a thread for it on each
// hand-off, and what that costs is the operating system's (or the
// hypervisor's) price of a cross-CPU wake-up: the part of Vigil's
// overhead that a faster wake-up removes. It returns the median.
func handoffCost(n int) time.Duration {
	start, done := make(chan struct{}), make(chan struct{})
	go func() {
		for range start {
			done <- struct{}{}
		}
	}()
	defer close(start)
	d := make([]time.Duration, 0, n)
	for range n {
		for t := time.Now(); time.Since(t) < 300*time.Microsecond; {
		}
		t0 := time.Now()
		start <- struct{}{}
		<-done
		d = append(d, time.Since(t0))
	}
	return percentile(d, 0.5)
}

// benchModel finds the model to run, generating the demo primary into a
// temporary directory when none is given or built.
func benchModel(flagPath string) (string, func(), error) {
	nothing := func() {}
	if flagPath != "" {
		return flagPath, nothing, nil
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, "build", "models", demo.FileName(demo.RolePrimary))
			if _, err := os.Stat(p); err == nil {
				return p, nothing, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	dir, err := os.MkdirTemp("", "vigil-bench-models-")
	if err != nil {
		return "", nothing, err
	}
	paths, err := demo.WriteAll(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nothing, err
	}
	return paths[0], func() { os.RemoveAll(dir) }, nil
}

// bareSession is the baseline: onnxruntime_go used directly, the way a
// careful program would without Vigil — one AdvancedSession with bound
// tensors, the frame copied in and the outputs copied out.
type bareSession struct {
	sess *ort.AdvancedSession
	in   *ort.Tensor[float32]
	out  []*ort.Tensor[float32]
	sink []float32
}

func newBareSession(path string, m inference.ModelInfo, p inference.Provider, threads inference.ThreadOptions) (*bareSession, error) {
	if len(m.Inputs) != 1 {
		return nil, fmt.Errorf("model %s has %d inputs; the bare baseline takes models with one", path, len(m.Inputs))
	}
	opts, err := inference.NewSessionOptions(p, threads, inference.TensorRTOptions{})
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	s := &bareSession{}
	s.in, err = ort.NewEmptyTensor[float32](ort.NewShape(m.Inputs[0].Shape...))
	if err != nil {
		return nil, err
	}
	outs := []ort.Value{}
	outNames := []string{}
	for _, o := range m.Outputs {
		t, err := ort.NewEmptyTensor[float32](ort.NewShape(o.Shape...))
		if err != nil {
			s.destroy()
			return nil, err
		}
		s.out = append(s.out, t)
		outs = append(outs, t)
		outNames = append(outNames, o.Name)
		s.sink = make([]float32, max(len(s.sink), o.Size))
	}
	s.sess, err = ort.NewAdvancedSession(path, []string{m.Inputs[0].Name}, outNames, []ort.Value{s.in}, outs, opts)
	if err != nil {
		s.destroy()
		return nil, err
	}
	for range 3 {
		if err := s.sess.Run(); err != nil {
			s.destroy()
			return nil, err
		}
	}
	return s, nil
}

func (s *bareSession) run(frame []float32) error {
	copy(s.in.GetData(), frame)
	if err := s.sess.Run(); err != nil {
		return err
	}
	for _, o := range s.out {
		copy(s.sink, o.GetData())
	}
	return nil
}

func (s *bareSession) destroy() {
	if s.sess != nil {
		s.sess.Destroy()
	}
	if s.in != nil {
		s.in.Destroy()
	}
	for _, o := range s.out {
		o.Destroy()
	}
}
