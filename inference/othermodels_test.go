package inference_test

import (
	"context"
	"encoding/binary"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
)

// otherModel returns a model from the onnxruntime_go module's test_data,
// exported from PyTorch by its authors.
func otherModel(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Fatalf("locate the onnxruntime_go module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "test_data", name)
}

// TestSeveralInputsAndOutputs runs a model with int32, float32 and bfloat16
// inputs and int64 and float64 outputs: out1 = int64(reshape(a)) with
// c[0] added to its first element; out2 = float64(reshape(b)).
func TestSeveralInputsAndOutputs(t *testing.T) {
	b := load(t, inference.Config{ModelPath: otherModel(t, "example_several_inputs_and_outputs.onnx")})
	in, out := b.NewInputs(), b.NewOutputs()
	if len(in) != 3 || len(out) != 2 {
		t.Fatalf("%d inputs, %d outputs", len(in), len(out))
	}
	if in[0].DType != inference.Int32 || in[1].DType != inference.Float32 || in[2].DType != inference.BFloat16 {
		t.Fatalf("input dtypes %v %v %v", in[0].DType, in[1].DType, in[2].DType)
	}
	for i := range 100 {
		binary.LittleEndian.PutUint32(in[0].Raw[4*i:], uint32(i))
	}
	for i := range in[1].Data {
		in[1].Data[i] = float32(i) / 2
	}
	binary.LittleEndian.PutUint16(in[2].Raw, 0x4040) // bfloat16 3.0
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatal(err)
	}
	if out[0].DType != inference.Int64 || out[1].DType != inference.Float64 {
		t.Fatalf("output dtypes %v %v", out[0].DType, out[1].DType)
	}
	for i := range 100 {
		got := int64(binary.LittleEndian.Uint64(out[0].Raw[8*i:]))
		want := int64(i)
		if i == 0 {
			want = 3
		}
		if got != want {
			t.Fatalf("output 1[%d] = %d, want %d", i, got, want)
		}
	}
	for i := range 120 {
		got := math.Float64frombits(binary.LittleEndian.Uint64(out[1].Raw[8*i:]))
		if got != float64(i)/2 {
			t.Fatalf("output 2[%d] = %v, want %v", i, got, float64(i)/2)
		}
	}
	// Raw inputs are checked for their byte length.
	in[0].Raw = in[0].Raw[:8]
	if _, err := b.Run(context.Background(), far(), in, out); err == nil || !strings.Contains(err.Error(), "400 bytes of int32") {
		t.Errorf("short raw input: %v", err)
	}
}

// TestDynamicAxes: a model with a dynamic batch axis runs with the batch size
// fixed by configuration, and its output shape is learnt from the model.
func TestDynamicAxes(t *testing.T) {
	path := otherModel(t, "example_dynamic_axes.onnx")
	b := load(t, inference.Config{ModelPath: path, InputShapes: map[string][]int64{"input_vectors": {4, 10}}})
	info := b.Info().Model
	if got := info.Outputs[0].Shape; len(got) != 1 || got[0] != 4 {
		t.Fatalf("output shape %v, want [4]", got)
	}
	in, out := b.NewInputs(), b.NewOutputs()
	for i := range in[0].Data {
		in[0].Data[i] = float32(i / 10) // row r is all r
	}
	if _, err := b.Run(context.Background(), far(), in, out); err != nil {
		t.Fatal(err)
	}
	for r, v := range out[0].Data {
		if v != float32(10*r) {
			t.Errorf("sum of row %d = %v, want %v", r, v, 10*r)
		}
	}
	inferencetest.Init(t)
	for _, bad := range []map[string][]int64{
		{"nope": {4, 10}},
		{"input_vectors": {4, 11}},
		{"input_vectors": {4}},
		{"input_vectors": {0, 10}},
	} {
		if _, err := inference.Load(inference.Config{ModelPath: path, InputShapes: bad}); err == nil || !strings.Contains(err.Error(), "input_shapes") {
			t.Errorf("InputShapes %v: %v, want an error naming input_shapes", bad, err)
		}
	}
}
