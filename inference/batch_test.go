package inference_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/watchdog"
)

// TestBatchDynamicAxes: example_dynamic_axes.onnx (exported from PyTorch:
// [batch,10] in, the sum of each row [batch] out) with max_batch 8 takes any
// batch from 1 to 8 in one run, through the same buffers, without
// allocating.
func TestBatchDynamicAxes(t *testing.T) {
	b := load(t, inference.Config{ModelPath: otherModel(t, "example_dynamic_axes.onnx"), MaxBatch: 8})
	info := b.Info().Model
	if info.MaxBatch != 8 || fmt.Sprint(info.Inputs[0].Shape) != "[8 10]" || fmt.Sprint(info.Outputs[0].Shape) != "[8]" {
		t.Fatalf("max_batch %d, input %v, output %v", info.MaxBatch, info.Inputs[0].Shape, info.Outputs[0].Shape)
	}
	full, out := b.NewInputs(), b.NewOutputs()
	for i := range full[0].Data {
		full[0].Data[i] = float32(i / 10) // row r is all r
	}
	run := func(n int) {
		t.Helper()
		in := []inference.Tensor{{Name: full[0].Name, Shape: []int64{int64(n), 10}, Data: full[0].Data[:10*n]}}
		if _, err := b.Run(context.Background(), far(), in, out); err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
		if len(out[0].Shape) != 1 || out[0].Shape[0] != int64(n) || len(out[0].Data) != n {
			t.Fatalf("batch of %d: output shape %v, %d values", n, out[0].Shape, len(out[0].Data))
		}
		for r, v := range out[0].Data {
			if v != float32(10*r) {
				t.Fatalf("batch of %d: sum of row %d = %v, want %v", n, r, v, 10*r)
			}
		}
	}
	for _, n := range []int{1, 8, 3, 7, 2, 8, 1} {
		run(n)
	}
	in3 := []inference.Tensor{{Name: full[0].Name, Shape: []int64{3, 10}, Data: full[0].Data[:30]}}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := b.Run(context.Background(), far(), in3, out); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Run(context.Background(), far(), full, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("batched runs allocate %v times", allocs)
	}
	for _, bad := range []struct {
		shape []int64
		data  int
		want  string
	}{
		{[]int64{9, 10}, 90, "shape [N 10] with a batch of N = 1 to 8 frames, got shape [9 10]"},
		{[]int64{0, 10}, 0, "got shape [0 10]"},
		{[]int64{2, 11}, 22, "got shape [2 11]"},
		{[]int64{2, 10}, 30, "20 float32 values for shape [2 10], got 30"},
	} {
		in := []inference.Tensor{{Name: full[0].Name, Shape: bad.shape, Data: make([]float32, bad.data)}}
		var ie *inference.InputError
		if _, err := b.Run(context.Background(), far(), in, out); !errors.As(err, &ie) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("shape %v: %v, want an input error saying %q", bad.shape, err, bad.want)
		}
	}
}

// TestBatchRefusedWithoutMaxBatch: without max_batch a model runs one shape
// and says why another is refused; a model whose first axis is fixed fails
// to load with max_batch.
func TestBatchRefusedWithoutMaxBatch(t *testing.T) {
	b := load(t, inference.Config{ModelPath: otherModel(t, "example_dynamic_axes.onnx")})
	out := b.NewOutputs()
	in := []inference.Tensor{{Name: "input_vectors", Shape: []int64{3, 10}, Data: make([]float32, 30)}}
	if _, err := b.Run(context.Background(), far(), in, out); err == nil || !strings.Contains(err.Error(), "expected shape [1 10] (the model's first axis is dynamic, but max_batch is not set") {
		t.Errorf("batch of 3 without max_batch: %v", err)
	}
	paths := inferencetest.DemoModels(t)
	b = load(t, inference.Config{ModelPath: paths[demo.RoleDegraded]})
	in = []inference.Tensor{{Name: demo.InputName, Shape: []int64{2, 3, 66, 200}, Data: make([]float32, 2*3*66*200)}}
	if _, err := b.Run(context.Background(), far(), in, b.NewOutputs()); err == nil || !strings.Contains(err.Error(), "expected shape [1 3 66 200] (the model's first axis is fixed at 1: it takes no batches)") {
		t.Errorf("batch of 2 for a fixed model: %v", err)
	}
	_, err := inference.Load(inference.Config{ModelPath: paths[demo.RoleDegraded], MaxBatch: 4})
	if !errors.Is(err, inference.ErrBadModel) || !strings.Contains(err.Error(), "max_batch 4") || !strings.Contains(err.Error(), "takes no batches") {
		t.Errorf("max_batch for a fixed model: %v", err)
	}
	for _, n := range []int{-1, inference.MaxBatchLimit + 1} {
		if _, err := inference.Load(inference.Config{ModelPath: paths[demo.RoleDegraded], MaxBatch: n}); err == nil || !strings.Contains(err.Error(), "max_batch") {
			t.Errorf("max_batch %d: %v", n, err)
		}
	}
	// The batch axis is max_batch's, not input_shapes'.
	if _, err := inference.Load(inference.Config{ModelPath: otherModel(t, "example_dynamic_axes.onnx"), MaxBatch: 4, InputShapes: map[string][]int64{"input_vectors": {2, 10}}}); err == nil || !strings.Contains(err.Error(), "input_shapes") {
		t.Errorf("input_shapes against max_batch: %v", err)
	}
}

// batchFrames returns n random frames, one after the other.
func batchFrames(r *rand.Rand, n int) []float32 {
	d := make([]float32, n*3*66*200)
	randomFrame(r, d)
	return d
}

// TestBatchThroughTheRouter: the multi-camera demo models behind the router
// with max_batch 4. A request of n frames is served by the primary with n
// answers, each the one the single-frame models give that frame alone; a
// bad value in one frame refuses the batch and says which frame; a good
// batch allocates nothing.
func TestBatchThroughTheRouter(t *testing.T) {
	batched := inferencetest.DemoBatchModels(t)
	single := inferencetest.DemoModels(t)
	var runners [watchdog.NumBackends]inference.Runner
	for b, role := range []string{demo.RolePrimary, demo.RoleShadow, demo.RoleDegraded} {
		runners[b] = load(t, inference.Config{Name: role, ModelPath: batched[role], MaxBatch: 4})
	}
	alone := load(t, inference.Config{ModelPath: single[demo.RolePrimary]})
	rep := new(countingReporter)
	router, err := inference.NewRouter(inference.RouterConfig{PreferWait: 20 * time.Millisecond}, runners, rep)
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close(context.Background())
	m, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	router.SetPlan(m.Plan())
	r := rand.New(rand.NewPCG(21, 22))
	out := runners[watchdog.Primary].(*inference.Backend).NewOutputs()
	aloneIn, aloneOut := alone.NewInputs(), alone.NewOutputs()
	var ans inference.Answer
	for _, n := range []int{1, 4, 2, 3} {
		frames := batchFrames(r, n)
		in := []inference.Tensor{{Name: demo.InputName, Shape: []int64{int64(n), 3, 66, 200}, Data: frames}}
		if err := router.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans); err != nil || ans.Status != inference.StatusOK || ans.ServedBy != watchdog.Primary {
			t.Fatalf("batch of %d: %v %+v", n, err, ans)
		}
		if !slices.Equal(out[0].Shape, []int64{int64(n), 3}) || len(out[0].Data) != 3*n {
			t.Fatalf("batch of %d: output shape %v, %d values", n, out[0].Shape, len(out[0].Data))
		}
		for i := range n {
			copy(aloneIn[0].Data, frames[i*3*66*200:])
			if _, err := alone.Run(context.Background(), far(), aloneIn, aloneOut); err != nil {
				t.Fatal(err)
			}
			for k, v := range aloneOut[0].Data {
				if got := out[0].Data[3*i+k]; math.Abs(float64(got-v)) > 1e-5 {
					t.Errorf("batch of %d, frame %d: controls[%d] = %g, alone %g", n, i, k, got, v)
				}
			}
		}
	}
	frames := batchFrames(r, 3)
	frames[2*3*66*200+5] = float32(math.Inf(-1))
	in := []inference.Tensor{{Name: demo.InputName, Shape: []int64{3, 3, 66, 200}, Data: frames}}
	err = router.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans)
	if err == nil || !strings.Contains(err.Error(), "-Inf at index 79205 [2 0 0 5]") {
		t.Errorf("bad value in the third frame: %v", err)
	}
	in = []inference.Tensor{{Name: demo.InputName, Shape: []int64{5, 3, 66, 200}, Data: batchFrames(r, 5)}}
	if err := router.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans); err == nil || !strings.Contains(err.Error(), "N = 1 to 4") {
		t.Errorf("batch of 5: %v", err)
	}

	// A canary probes with one frame.
	runs := rep.runs.Load()
	if !router.Canary(watchdog.Shadow, time.Second) {
		t.Fatal("canary not started")
	}
	for deadline := time.Now().Add(5 * time.Second); rep.runs.Load() == runs && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if rep.runs.Load() == runs {
		t.Error("the canary did not report")
	}

	two := []inference.Tensor{{Name: demo.InputName, Shape: []int64{2, 3, 66, 200}, Data: batchFrames(r, 2)}}
	four := []inference.Tensor{{Name: demo.InputName, Shape: []int64{4, 3, 66, 200}, Data: batchFrames(r, 4)}}
	allocs := testing.AllocsPerRun(30, func() {
		for _, in := range [][]inference.Tensor{two, four} {
			if err := router.Infer(context.Background(), time.Now().Add(time.Second), in, out, &ans); err != nil || ans.Status != inference.StatusOK {
				t.Fatalf("%v %+v", err, ans)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("batched requests allocate %v times", allocs)
	}
	if err := checkRouterContract(runners); err != nil {
		t.Error(err)
	}
}

// checkRouterContract: backends that differ in max_batch do not share a
// router, and the error names the two (the first loaded one is the
// reference, whichever rung it is).
func checkRouterContract(runners [watchdog.NumBackends]inference.Runner) error {
	b, err := inference.Load(inference.Config{ModelPath: runners[watchdog.Degraded].Info().Model.Path, MaxBatch: 2})
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	for _, ref := range []watchdog.Backend{watchdog.Primary, watchdog.Shadow} {
		var mixed [watchdog.NumBackends]inference.Runner
		mixed[ref] = runners[watchdog.Primary]
		mixed[watchdog.Degraded] = b
		want := fmt.Sprintf("router: %s and degraded: max_batch 4 vs 2", ref)
		if _, err := inference.NewRouter(inference.RouterConfig{}, mixed, nil); err == nil || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("max_batch 4 (%s) and 2 (degraded) behind one router: %v, want %q", ref, err, want)
		}
	}
	return nil
}
