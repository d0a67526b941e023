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
	"slices"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/watchdog"
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
const inferenceAbout = `Runs one model four ways, alternating run by run: through Vigil's
Backend.Run, through a Router with that backend as its one rung (one
start per request, as the cold policy plans it), through a bare
onnxruntime_go session with the same provider, threads and inputs, and
through Backend.Run of the same model in a worker process (isolation:
process). Reports the latency distributions, what each Vigil path adds to
the bare run, what the worker adds to the in-process run
(worker_overhead_us), the platform's goroutine hand-off round trip, and Go
heap allocations per run.`

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
	fs.BoolVar(&f.quick, "quick", false, "a short run (400 timed runs of each side, 20 untimed; well under 30 s on a small CPU); --runs and --warmup given as well win")
	if err := parseSuite(fs, "inference", inferenceAbout, args, stderr); err != nil {
		return f, err
	}
	if f.quick {
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		if !set["runs"] {
			f.runs = 400
		}
		if !set["warmup"] {
			f.warmup = 20
		}
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

	router, err := newOneRungRouter(b)
	if err != nil {
		return err
	}
	defer router.Close(context.Background())
	wb, err := inference.Load(inference.Config{Name: "primary", ModelPath: model, Provider: prov, Threads: threads, Isolation: inference.Process})
	if err != nil {
		return fmt.Errorf("the model in a worker process: %w", err)
	}
	defer wb.Close(context.Background())
	win, wout := wb.NewInputs(), wb.NewOutputs()

	info := b.Info()
	in, out := b.NewInputs(), b.NewOutputs()
	frames := randomFrames(16, info.Model.Inputs[0].Size)
	sides := []func([]float32) (time.Duration, error){
		func(frame []float32) (time.Duration, error) {
			t0 := time.Now()
			err := bare.run(frame)
			return time.Since(t0), err
		},
		func(frame []float32) (time.Duration, error) {
			in[0].Data = frame
			t0 := time.Now()
			_, err := b.Run(ctx, t0.Add(10*time.Second), in, out)
			return time.Since(t0), err
		},
		func(frame []float32) (time.Duration, error) {
			in[0].Data = frame
			t0 := time.Now()
			err := inferOK(ctx, router, t0.Add(10*time.Second), in, out)
			return time.Since(t0), err
		},
		func(frame []float32) (time.Duration, error) {
			win[0].Data = frame
			t0 := time.Now()
			_, err := wb.Run(ctx, t0.Add(10*time.Second), win, wout)
			return time.Since(t0), err
		},
	}

	fmt.Fprintf(stdout, "suite inference: %s (%s %s) on %s, intra-op %d, inter-op %d, ONNX Runtime %s\n",
		model, info.Model.Name, info.Model.Version, prov, f.intra, f.inter, ort.GetVersion())
	fmt.Fprintf(stdout, "warm-up: %v for %d session(s), first run %v\n", info.Warmup.Round(time.Microsecond), info.Sessions, info.FirstRun.Round(time.Microsecond))
	times, err := alternateRuns(ctx, f, frames, sides)
	if err != nil {
		return err
	}
	// The worker's supervisor allocates (heartbeats, memory checks): stop
	// it before counting the allocations of the in-process paths.
	if err := wb.Close(ctx); err != nil {
		return err
	}
	n := min(f.runs, 200)
	runAllocs, err := allocsPerRun(n, func() error { _, err := b.Run(ctx, time.Now().Add(time.Hour), in, out); return err })
	if err != nil {
		return err
	}
	routerAllocs, err := allocsPerRun(n, func() error { return inferOK(ctx, router, time.Now().Add(time.Hour), in, out) })
	if err != nil {
		return err
	}
	handoff := [2]time.Duration{handoffCost(min(f.runs, 400), 0)}
	handoff[1] = handoffCost(min(f.runs, 400), percentile(slices.Clone(times[0]), 0.5))
	printInference(stdout, f.runs, times, max(runAllocs, routerAllocs), handoff)
	return nil
}

// printInference prints the suite's table and its RESULT line from the
// times of the bare, Backend.Run and router sides, run i of each side
// taken in the same round. What a Vigil path adds (overhead_us,
// router_overhead_us) is the median over the rounds of its run's time less
// the bare run's: a round's runs follow one another, so a change of the
// machine's load or clock over the suite falls out of the difference.
func printInference(w io.Writer, runs int, times [4][]time.Duration, allocs uint64, handoff [2]time.Duration) {
	const bare, run, router, worker = 0, 1, 2, 3
	var added [4]time.Duration
	for i := range times {
		diff := make([]time.Duration, len(times[i]))
		for k := range diff {
			diff[k] = times[i][k] - times[bare][k]
		}
		added[i] = percentile(diff, 0.50)
	}
	var p50, p99 [4]time.Duration
	for i, d := range times {
		p50[i], p99[i] = percentile(d, 0.50), percentile(d, 0.99)
	}
	fmt.Fprintf(w, "%d timed runs each, alternating\n", runs)
	fmt.Fprintf(w, "%-8s %12s %12s %12s\n", "", "p50", "p99", "added p50")
	for i, name := range []string{"bare", "vigil", "router", "worker"} {
		fmt.Fprintf(w, "%-8s %12v %12v %10.1fµs\n", name, p50[i].Round(time.Microsecond), p99[i].Round(time.Microsecond), micros(added[i]))
	}
	fmt.Fprintf(w, "%-8s %12.3f %12.3f\n", "ratio", float64(p50[run])/float64(p50[bare]), float64(p99[run])/float64(p99[bare]))
	fmt.Fprintf(w, "Go heap allocations per run (Backend.Run and Router.Infer, the larger): %d\n", allocs)
	fmt.Fprintf(w, "platform: a hand-off to a parked goroutine and back, as each Vigil run makes once, p50 %.1f µs (GOMAXPROCS %d);\n",
		micros(handoff[0]), runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "          the same around %v of work, as long as the bare run, p50 %.1f µs (both ways pay a wake-up)\n",
		p50[bare].Round(time.Microsecond), micros(handoff[1]))
	// What the worker adds over the in-process run, round by round.
	diff := make([]time.Duration, len(times[worker]))
	for k := range diff {
		diff[k] = times[worker][k] - times[run][k]
	}
	workerAdded := percentile(diff, 0.50)
	fmt.Fprintf(w, "worker process over in-process Backend.Run: p50 %.1f µs a run (the doorbell both ways and the copies through shared memory)\n", micros(workerAdded))
	fmt.Fprintf(w, "RESULT suite=inference overhead_p50=%.3f overhead_p99=%.3f bare_p50_us=%.0f allocs_per_run=%d handoff_us=%.1f overhead_us=%.1f router_overhead_us=%.1f worker_overhead_us=%.1f\n",
		float64(p50[run])/float64(p50[bare]), float64(p99[run])/float64(p99[bare]), micros(p50[bare]), allocs, micros(handoff[0]),
		micros(added[run]), micros(added[router]), micros(workerAdded))
}

// newOneRungRouter puts b behind a Router as its only rung (the degraded
// one, which a router must have), with a plan that starts it alone and at
// once, as the cold policy does with one usable rung. The input checks are
// off: they cost the same on any path (BenchmarkInputCheck in package
// inference measures them), and this suite measures what the router's path
// itself adds.
func newOneRungRouter(b *inference.Backend) (*inference.Router, error) {
	var runners [watchdog.NumBackends]inference.Runner
	runners[watchdog.Degraded] = b
	cfg := inference.RouterConfig{Inputs: inference.InputChecks{NonFinite: inference.NonFinitePass, Range: inference.RangeIgnore}}
	r, err := inference.NewRouter(cfg, runners, nil)
	if err != nil {
		return nil, fmt.Errorf("router over the model: %w", err)
	}
	p := watchdog.Plan{Policy: watchdog.Cold, NumStarts: 1}
	p.Starts[0] = watchdog.Start{Backend: watchdog.Degraded}
	p.Prefer[0] = watchdog.Degraded
	r.SetPlan(p)
	return r, nil
}

// inferOK answers one request through r and fails unless it was served.
func inferOK(ctx context.Context, r *inference.Router, deadline time.Time, in, out []inference.Tensor) error {
	var ans inference.Answer
	if err := r.Infer(ctx, deadline, in, out, &ans); err != nil {
		return err
	}
	if ans.Status != inference.StatusOK {
		return fmt.Errorf("router: %v %v %s", ans.Status, ans.Reason, ans.Detail)
	}
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
// after f.warmup untimed ones. The side that goes first rotates, so that
// none always runs on a cache another warmed.
func alternateRuns(ctx context.Context, f inferenceFlags, frames [][]float32, sides []func([]float32) (time.Duration, error)) ([4][]time.Duration, error) {
	var times [4][]time.Duration
	for i := range f.warmup {
		for _, side := range sides {
			if _, err := side(frames[i%len(frames)]); err != nil {
				return times, err
			}
		}
	}
	for j := range sides {
		times[j] = make([]time.Duration, 0, f.runs)
	}
	for i := range f.runs {
		if err := ctx.Err(); err != nil {
			return times, err
		}
		frame := frames[i%len(frames)]
		for k := range sides {
			j := (i + k) % len(sides)
			d, err := sides[j](frame)
			if err != nil {
				return times, err
			}
			times[j] = append(times[j], d)
		}
	}
	return times, nil
}

// allocsPerRun counts Go heap allocations per call of run over n calls the
// way testing.AllocsPerRun does: with GOMAXPROCS at 1, and the average
// rounded down, so that a stray allocation of the runtime itself (a GC
// worker, a timer) in one of n runs does not read as an allocation per run.
func allocsPerRun(n int, run func() error) (uint64, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if err := run(); err != nil { // the first call of a closure may set up
		return 0, err
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if err := run(); err != nil {
			return 0, err
		}
	}
	runtime.ReadMemStats(&after)
	return (after.Mallocs - before.Mallocs) / uint64(n), nil
}

// handoffCost measures, n times, what a hand-off round trip costs on this
// platform: the caller wakes a parked goroutine, which busies its CPU for
// around (as the native call of a run would; 0 for none) and wakes the
// caller again; it returns the median time less around. Before each, the
// caller keeps its CPU busy for a while, as a bare run would, so that the
// runtime's idle threads are asleep again. Where another P is idle, Go
// wakes a thread for it on each hand-off, and what that costs is the
// operating system's (or the hypervisor's) price of a cross-CPU wake-up:
// the part of Vigil's overhead that a faster wake-up removes. With around
// 0 the answer comes while the thread woken by the first hand-off is still
// looking for work, so only the first pays a wake-up (handoff_us); around
// a run as long as the model's, both do.
func handoffCost(n int, around time.Duration) time.Duration {
	start, done := make(chan struct{}), make(chan struct{})
	go func() {
		for range start {
			spin(around)
			done <- struct{}{}
		}
	}()
	defer close(start)
	d := make([]time.Duration, 0, n)
	for range n {
		spin(300 * time.Microsecond)
		t0 := time.Now()
		start <- struct{}{}
		<-done
		d = append(d, time.Since(t0)-around)
	}
	return percentile(d, 0.5)
}

// spin keeps the CPU busy for d.
func spin(d time.Duration) {
	for t := time.Now(); time.Since(t) < d; {
	}
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
