package inference_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/onnxgraph"
	"github.com/vigil-av/vigil/models/testmodels"
)

// far is a deadline no test run gets near.
func far() time.Time { return time.Now().Add(time.Minute) }

func load(t *testing.T, cfg inference.Config) *inference.Backend {
	t.Helper()
	inferencetest.Init(t)
	b, err := inference.Load(cfg)
	if err != nil {
		t.Fatalf("Load(%s): %v", cfg.ModelPath, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func randomFrame(r *rand.Rand, d []float32) {
	for i := range d {
		d[i] = r.Float32()
	}
}

func TestDemoModelsLoadAndRun(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, role := range demo.Roles {
		t.Run(role, func(t *testing.T) {
			b := load(t, inference.Config{Name: role, ModelPath: paths[role]})
			info := b.Info()
			if info.Model.Role != role || info.Model.Version != demo.Version || info.Model.Name == "" {
				t.Errorf("metadata: name %q version %q role %q", info.Model.Name, info.Model.Version, info.Model.Role)
			}
			if len(info.Model.Inputs) != 1 || info.Model.Inputs[0].Name != demo.InputName || fmt.Sprint(info.Model.Inputs[0].Shape) != fmt.Sprint(demo.InputShape) {
				t.Errorf("inputs %+v, want %s %v", info.Model.Inputs, demo.InputName, demo.InputShape)
			}
			if len(info.Model.Outputs) != 1 || info.Model.Outputs[0].Name != demo.OutputName || info.Model.Outputs[0].Size != 3 {
				t.Errorf("outputs %+v", info.Model.Outputs)
			}
			if info.Warmup <= 0 || info.FirstRun <= 0 || info.FirstRun > info.Warmup {
				t.Errorf("warm-up %v, first run %v", info.Warmup, info.FirstRun)
			}
			in, out := b.NewInputs(), b.NewOutputs()
			for range 20 {
				randomFrame(r, in[0].Data)
				res, err := b.Run(context.Background(), far(), in, out)
				if err != nil {
					t.Fatal(err)
				}
				if res.Latency <= 0 {
					t.Errorf("latency %v", res.Latency)
				}
				for i, v := range out[0].Data {
					lo, hi := demo.OutputRanges[i][0], demo.OutputRanges[i][1]
					if !(v >= lo && v <= hi) {
						t.Fatalf("output %d = %v outside [%v, %v]", i, v, lo, hi)
					}
				}
			}
		})
	}
}

func TestLoadRejectsBadModelFiles(t *testing.T) {
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	good, err := os.ReadFile(paths[demo.RolePrimary])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	random := make([]byte, 4096)
	rc := rand.NewChaCha8([32]byte{3, 4})
	rc.Read(random)
	cases := map[string]struct {
		path string
		want string
	}{
		"missing":   {filepath.Join(dir, "absent.onnx"), "does not exist"},
		"empty":     {write("empty.onnx", nil), "is empty"},
		"truncated": {write("truncated.onnx", good[:len(good)/2]), "not an ONNX model"},
		"random":    {write("random.onnx", random), "not an ONNX model"},
		"directory": {dir, "read model"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := inference.Load(inference.Config{ModelPath: c.path})
			if err == nil {
				b.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, inference.ErrBadModel) {
				t.Errorf("error %v does not wrap ErrBadModel", err)
			}
			if !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q should name %s and say %q", err, c.path, c.want)
			}
		})
	}
}

func TestGPUProviderUnavailableFailsLoad(t *testing.T) {
	inferencetest.Init(t)
	paths := inferencetest.DemoModels(t)
	// The library `make deps` fetches is a CPU build: asking it for a GPU
	// must fail the load, never fall back to the CPU.
	for _, p := range []string{"cuda:0", "tensorrt:0"} {
		prov, err := inference.ParseProvider(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := inference.Load(inference.Config{Name: "primary", ModelPath: paths[demo.RolePrimary], Provider: prov,
			TensorRT: inference.TensorRTOptions{FP16: true, EngineCacheDir: t.TempDir(), TimingCacheDir: t.TempDir()}})
		if err == nil {
			b.Close(context.Background())
			t.Fatalf("Load on %s succeeded with a CPU-only library", p)
		}
		if !errors.Is(err, inference.ErrProviderUnavailable) || !strings.Contains(err.Error(), p) {
			t.Errorf("Load on %s: %v; want ErrProviderUnavailable naming %s", p, err, p)
		}
	}
}

func TestRequestValidation(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	b := load(t, inference.Config{ModelPath: paths[demo.RolePrimary]})
	in, out := b.NewInputs(), b.NewOutputs()
	frame := in[0]
	shape := []int64{1, 3, 66, 200}
	cases := []struct {
		name     string
		in       []inference.Tensor
		out      []inference.Tensor
		expected string
		got      string
	}{
		{"no inputs", nil, out, "1 input tensors (frame [1 3 66 200])", "got 0"},
		{"two inputs", []inference.Tensor{frame, frame}, out, "1 input tensors", "got 2"},
		{"unknown name", []inference.Tensor{{Name: "image", Shape: shape, Data: frame.Data}}, out, "one of the model's inputs (frame [1 3 66 200])", "unknown name"},
		{"wrong dtype", []inference.Tensor{{Name: "frame", DType: inference.Float16, Shape: shape, Raw: make([]byte, 39600*2)}}, out, "dtype float32", "dtype float16"},
		{"wrong shape", []inference.Tensor{{Name: "frame", Shape: []int64{1, 3, 200, 66}, Data: frame.Data}}, out, "shape [1 3 66 200]", "shape [1 3 200 66]"},
		{"short data", []inference.Tensor{{Name: "frame", Shape: shape, Data: frame.Data[:100]}}, out, "39600 float32 values", "got 100"},
		{"no outputs", in, nil, "1 output tensors", "got 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := b.Run(context.Background(), far(), c.in, c.out)
			var ie *inference.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Run: %v, want *InputError", err)
			}
			if !strings.Contains(err.Error(), c.expected) || !strings.Contains(err.Error(), c.got) {
				t.Errorf("error %q should say expected %q and %q", err, c.expected, c.got)
			}
		})
	}
	// A rejected request changes nothing: the backend still serves.
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatalf("valid request after bad ones: %v", err)
	}
	if _, err := b.Run(context.Background(), time.Now().Add(-time.Millisecond), in, out); !errors.Is(err, inference.ErrDeadline) || !strings.Contains(err.Error(), "before start") {
		t.Errorf("deadline already past: %v", err)
	}
}

func TestInvalidOutputs(t *testing.T) {
	t.Run("nan", func(t *testing.T) {
		data, err := testmodels.Sqrt()
		b := load(t, inference.Config{ModelPath: inferencetest.WriteModel(t, "sqrt.onnx", data, err)})
		in, out := b.NewInputs(), b.NewOutputs()
		copy(in[0].Data, []float32{4, 9, -1, 16})
		_, err = b.Run(context.Background(), far(), in, out)
		var ie *inference.InvalidOutputError
		if !errors.As(err, &ie) || ie.Reason != inference.InvalidNaN || ie.Index != 2 {
			t.Fatalf("Run: %v, want NaN at index 2", err)
		}
		if out[0].Data[0] != 2 || out[0].Data[1] != 3 {
			t.Errorf("outputs not copied out with the error: %v", out[0].Data)
		}
		copy(in[0].Data, []float32{4, 9, 1, 16})
		if _, err := b.Run(context.Background(), far(), in, out); err != nil {
			t.Errorf("valid run after NaN: %v", err)
		}
	})
	t.Run("inf", func(t *testing.T) {
		data, err := testmodels.Reciprocal()
		b := load(t, inference.Config{ModelPath: inferencetest.WriteModel(t, "recip.onnx", data, err)})
		in, out := b.NewInputs(), b.NewOutputs()
		copy(in[0].Data, []float32{1, 0, 2, 4})
		_, err = b.Run(context.Background(), far(), in, out)
		var ie *inference.InvalidOutputError
		if !errors.As(err, &ie) || ie.Reason != inference.InvalidInf || ie.Index != 1 || !math.IsInf(float64(ie.Value), 1) {
			t.Fatalf("Run: %v, want +Inf at index 1", err)
		}
	})
	t.Run("declared range", func(t *testing.T) {
		g := onnxgraph.New("identity")
		g.AddInput("x", 1, 2)
		g.AddOutput("y", 1, 2)
		g.AddNode("Identity", []string{"x"}, []string{"y"})
		g.SetMetadata(inference.MetaRangePrefix+"y", "[[0,1],[-5,5]]")
		data, err := g.Marshal()
		b := load(t, inference.Config{ModelPath: inferencetest.WriteModel(t, "range.onnx", data, err)})
		in, out := b.NewInputs(), b.NewOutputs()
		copy(in[0].Data, []float32{0.5, 4})
		if _, err := b.Run(context.Background(), far(), in, out); err != nil {
			t.Fatalf("in range: %v", err)
		}
		copy(in[0].Data, []float32{0.5, 6})
		_, err = b.Run(context.Background(), far(), in, out)
		var ie *inference.InvalidOutputError
		if !errors.As(err, &ie) || ie.Reason != inference.InvalidRange || ie.Index != 1 || ie.Range.Max != 5 {
			t.Fatalf("Run: %v, want out of range at index 1", err)
		}
		if !strings.Contains(err.Error(), "outside the declared range [-5, 5]") {
			t.Errorf("message %q", err)
		}
	})
	t.Run("bad range metadata", func(t *testing.T) {
		inferencetest.Init(t)
		g := onnxgraph.New("identity")
		g.AddInput("x", 1, 2)
		g.AddOutput("y", 1, 2)
		g.AddNode("Identity", []string{"x"}, []string{"y"})
		g.SetMetadata(inference.MetaRangePrefix+"y", "[[0,1]]")
		data, err := g.Marshal()
		_, err = inference.Load(inference.Config{ModelPath: inferencetest.WriteModel(t, "badrange.onnx", data, err)})
		if !errors.Is(err, inference.ErrBadModel) || !strings.Contains(err.Error(), "1 ranges for an output of 2 elements") {
			t.Errorf("Load: %v", err)
		}
	})
}

// TestDeadlineStopsSlowRun: a run that would take far longer than its
// deadline returns at the deadline; Terminate stops the native call soon
// after; the session then serves again with the same results as before.
func TestDeadlineStopsSlowRun(t *testing.T) {
	data, err := testmodels.Slow(4000, 512)
	b := load(t, inference.Config{ModelPath: inferencetest.WriteModel(t, "slow.onnx", data, err), WarmupRuns: 1})
	in, out := b.NewInputs(), b.NewOutputs()
	randomFrame(rand.New(rand.NewPCG(5, 6)), in[0].Data)

	t0 := time.Now()
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatal(err)
	}
	full := time.Since(t0)
	want := append([]float32(nil), out[0].Data...)

	const budget = 5 * time.Millisecond
	t0 = time.Now()
	_, err = b.Run(context.Background(), t0.Add(budget), in, out)
	took := time.Since(t0)
	var de *inference.DeadlineError
	if !errors.As(err, &de) || de.Stage != "running" {
		t.Fatalf("Run with a %v deadline: %v, want a deadline error while running", budget, err)
	}
	if took >= full/2 {
		t.Errorf("Run returned after %v; the full run takes %v, so it waited for the native call", took, full)
	}
	waitIdle(t, b, full)
	if b.Abandoned() != 1 {
		t.Errorf("Abandoned() = %d, want 1", b.Abandoned())
	}
	clear(out[0].Data)
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatalf("run after the deadline: %v", err)
	}
	for i := range want {
		if out[0].Data[i] != want[i] {
			t.Fatalf("output %d = %v after a terminated run, want %v", i, out[0].Data[i], want[i])
		}
	}
	t.Logf("full run %v, deadline %v, returned after %v", full, budget, took)
}

// waitIdle waits for every native run of b to return, failing after limit
// (plus slack for a loaded machine).
func waitIdle(t *testing.T, b *inference.Backend, limit time.Duration) {
	t.Helper()
	end := time.Now().Add(limit + 10*time.Second)
	for b.InFlight() > 0 {
		if time.Now().After(end) {
			t.Fatalf("native run still in flight after %v", limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDeadlineWhileNativeCallBusy uses a single huge node, which Terminate
// cannot interrupt: the caller still has its answer at the deadline while the
// native call goes on; other callers are told the backend is busy; Close does
// not destroy the session under the run; afterwards the session serves again.
func TestDeadlineWhileNativeCallBusy(t *testing.T) {
	data, err := testmodels.Giant(3072)
	inferencetest.Init(t)
	b, err := inference.Load(inference.Config{ModelPath: inferencetest.WriteModel(t, "giant.onnx", data, err), WarmupRuns: -1})
	if err != nil {
		t.Fatal(err)
	}
	in, out := b.NewInputs(), b.NewOutputs()
	fill(in[0].Data, 0.001)

	_, err = b.Run(context.Background(), time.Now().Add(5*time.Millisecond), in, out)
	busy := b.InFlight()
	if !errors.Is(err, inference.ErrDeadline) {
		t.Fatalf("Run: %v, want deadline error", err)
	}
	if busy != 1 {
		t.Skipf("the native call finished before the caller returned (InFlight %d); machine too fast for this model", busy)
	}
	_, err = b.Run(context.Background(), time.Now().Add(5*time.Millisecond), in, out)
	var de *inference.DeadlineError
	if !errors.As(err, &de) {
		t.Errorf("second Run while the session is busy: %v, want a deadline error", err)
	}
	// Unless the first native call ended in the meantime (a very loaded
	// machine), the only session was busy throughout: the second request
	// never started.
	if b.Abandoned() == 1 && de != nil && de.Stage != "queued" {
		t.Errorf("second Run while the session is busy: %v, want deadline while queued", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	err = b.Close(ctx)
	cancel()
	if b.InFlight() == 1 && (err == nil || !strings.Contains(err.Error(), "still running")) {
		t.Errorf("Close during a native run: %v, want 'still running'", err)
	}
	waitIdle(t, b, time.Minute)
	if _, err := b.Run(context.Background(), far(), in, out); !errors.Is(err, inference.ErrClosed) {
		t.Errorf("Run after Close began: %v, want ErrClosed", err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func fill(d []float32, v float32) {
	for i := range d {
		d[i] = v
	}
}

func TestRunCancelledByContext(t *testing.T) {
	data, err := testmodels.Slow(4000, 512)
	b := load(t, inference.Config{ModelPath: inferencetest.WriteModel(t, "slow.onnx", data, err), WarmupRuns: -1})
	in, out := b.NewInputs(), b.NewOutputs()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(2*time.Millisecond, cancel)
	if _, err := b.Run(ctx, far(), in, out); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	waitIdle(t, b, time.Minute)
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}

// TestConcurrentCallers: many goroutines share a backend of two sessions;
// each gets exactly the answer its own input gives when run alone.
func TestConcurrentCallers(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	b := load(t, inference.Config{ModelPath: paths[demo.RoleDegraded], Sessions: 2})
	const workers, runs = 6, 15
	r := rand.New(rand.NewPCG(7, 8))
	inputs := make([][]inference.Tensor, workers)
	want := make([][]float32, workers)
	for w := range workers {
		inputs[w] = b.NewInputs()
		randomFrame(r, inputs[w][0].Data)
		out := b.NewOutputs()
		if _, err := b.Run(context.Background(), far(), inputs[w], out); err != nil {
			t.Fatal(err)
		}
		want[w] = out[0].Data
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := b.NewOutputs()
			for range runs {
				if _, err := b.Run(context.Background(), far(), inputs[w], out); err != nil {
					errs <- err
					return
				}
				for i := range want[w] {
					if out[0].Data[i] != want[w][i] {
						errs <- fmt.Errorf("worker %d: output %d = %v, want %v", w, i, out[0].Data[i], want[w][i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRunDoesNotAllocate(t *testing.T) {
	paths := inferencetest.DemoModels(t)
	b := load(t, inference.Config{ModelPath: paths[demo.RoleDegraded]})
	in, out := b.NewInputs(), b.NewOutputs()
	deadline := far()
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := b.Run(ctx, deadline, in, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Run allocates %v times per call, want 0", allocs)
	}
}

func TestCloseWaitsForRunInFlight(t *testing.T) {
	data, err := testmodels.Slow(200, 512)
	inferencetest.Init(t)
	b, err := inference.Load(inference.Config{ModelPath: inferencetest.WriteModel(t, "slow.onnx", data, err), WarmupRuns: -1})
	if err != nil {
		t.Fatal(err)
	}
	in, out := b.NewInputs(), b.NewOutputs()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := b.Run(context.Background(), far(), in, out)
		done <- err
	}()
	<-started
	for b.InFlight() == 0 && len(done) == 0 {
		time.Sleep(100 * time.Microsecond)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("the run in flight during Close failed: %v", err)
	}
}
