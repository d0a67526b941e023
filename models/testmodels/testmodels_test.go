package testmodels

import (
	"bytes"
	"math"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// run loads model with one CPU thread, feeds the named inputs and returns
// the named outputs, each shaped as given in shapes.
func run(t testing.TB, model []byte, inputs map[string][]float32, inNames []string, outNames []string, shapes map[string][]int64) map[string][]float32 {
	t.Helper()
	newTensor := func(name string, data []float32) *ort.Tensor[float32] {
		var tensor *ort.Tensor[float32]
		var err error
		if data != nil {
			tensor, err = ort.NewTensor(ort.NewShape(shapes[name]...), data)
		} else {
			tensor, err = ort.NewEmptyTensor[float32](ort.NewShape(shapes[name]...))
		}
		if err != nil {
			t.Fatalf("tensor %s: %v", name, err)
		}
		t.Cleanup(func() { _ = tensor.Destroy() })
		return tensor
	}
	var ins, outs []ort.Value
	for _, n := range inNames {
		ins = append(ins, newTensor(n, inputs[n]))
	}
	outTensors := map[string]*ort.Tensor[float32]{}
	for _, n := range outNames {
		outTensors[n] = newTensor(n, nil)
		outs = append(outs, outTensors[n])
	}
	s := newSession(t, model, inNames, outNames, ins, outs)
	if err := s.Run(); err != nil {
		t.Fatalf("run: %v", err)
	}
	result := map[string][]float32{}
	for n, tensor := range outTensors {
		result[n] = append([]float32(nil), tensor.GetData()...)
	}
	return result
}

func newSession(t testing.TB, model []byte, inNames, outNames []string, ins, outs []ort.Value) *ort.AdvancedSession {
	t.Helper()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewAdvancedSessionWithONNXData(model, inNames, outNames, ins, outs, opts)
	if err != nil {
		t.Fatalf("load model: %v", err)
	}
	t.Cleanup(func() { _ = s.Destroy() })
	return s
}

// must(t)(Sqrt()) returns the model or fails the test.
func must(t testing.TB) func([]byte, error) []byte {
	return func(data []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
}

func TestSqrtGivesNaNOnNegative(t *testing.T) {
	out := run(t, must(t)(Sqrt()), map[string][]float32{"x": {4, 0, -1, 2.25}},
		[]string{"x"}, []string{"y"}, map[string][]int64{"x": {1, 4}, "y": {1, 4}})["y"]
	if out[0] != 2 || out[1] != 0 || out[3] != 1.5 {
		t.Errorf("Sqrt([4 0 -1 2.25]) = %v, want [2 0 NaN 1.5]", out)
	}
	if !math.IsNaN(float64(out[2])) {
		t.Errorf("Sqrt(-1) = %g, want NaN", out[2])
	}
}

func TestReciprocalGivesInfOnZero(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	out := run(t, must(t)(Reciprocal()), map[string][]float32{"x": {2, 0, negZero, -4}},
		[]string{"x"}, []string{"y"}, map[string][]int64{"x": {1, 4}, "y": {1, 4}})["y"]
	if out[0] != 0.5 || out[3] != -0.25 {
		t.Errorf("Reciprocal([2 0 -0 -4]) = %v, want [0.5 +Inf -Inf -0.25]", out)
	}
	if !math.IsInf(float64(out[1]), 1) || !math.IsInf(float64(out[2]), -1) {
		t.Errorf("Reciprocal(±0) = %g, %g, want +Inf, -Inf", out[1], out[2])
	}
}

func TestTwoInputs(t *testing.T) {
	shape := []int64{1, 3}
	out := run(t, must(t)(TwoInputs()),
		map[string][]float32{"a": {1, 2, 3}, "b": {10, -2, 0.5}},
		[]string{"a", "b"}, []string{"sum", "prod"},
		map[string][]int64{"a": shape, "b": shape, "sum": shape, "prod": shape})
	wantSum, wantProd := []float32{11, 0, 3.5}, []float32{10, -4, 1.5}
	for i := range 3 {
		if out["sum"][i] != wantSum[i] || out["prod"][i] != wantProd[i] {
			t.Fatalf("sum = %v, prod = %v, want %v, %v", out["sum"], out["prod"], wantSum, wantProd)
		}
	}
}

func TestSlowRunsAndStaysBounded(t *testing.T) {
	const width = 64
	x := make([]float32, width)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	shapes := map[string][]int64{"x": {1, width}, "y": {1, width}}
	y := run(t, must(t)(Slow(50, width)), map[string][]float32{"x": x}, []string{"x"}, []string{"y"}, shapes)["y"]
	nonZero := 0
	for _, v := range y {
		if !(v > -1 && v < 1) {
			t.Fatalf("y = %v, want every value in (-1, 1)", y)
		}
		if math.Abs(float64(v)) > 1e-3 {
			nonZero++
		}
	}
	if nonZero < width/2 {
		t.Errorf("only %d of %d outputs are away from 0; the chain should not vanish: %v", nonZero, width, y)
	}
}

// TestSlowStopsOnTerminate: with the terminate flag already set, ONNX Runtime
// stops at the first node boundary and Run fails.
func TestSlowStopsOnTerminate(t *testing.T) {
	x, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 512))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	y, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 512))
	if err != nil {
		t.Fatal(err)
	}
	defer y.Destroy()
	s := newSession(t, must(t)(Slow(400, 512)), []string{"x"}, []string{"y"}, []ort.Value{x}, []ort.Value{y})
	ro, err := ort.NewRunOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Destroy()
	if err := ro.Terminate(); err != nil {
		t.Fatal(err)
	}
	if err := s.RunWithOptions(ro); err == nil {
		t.Fatal("Run with the terminate flag set succeeded, want an error")
	}
	if err := ro.UnsetTerminate(); err != nil {
		t.Fatal(err)
	}
	if err := s.RunWithOptions(ro); err != nil {
		t.Fatalf("Run after UnsetTerminate: %v", err)
	}
}

func TestGiantLoads(t *testing.T) {
	const n = 1536
	x, err := ort.NewEmptyTensor[float32](ort.NewShape(n, n))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	y, err := ort.NewEmptyTensor[float32](ort.NewShape(n, n))
	if err != nil {
		t.Fatal(err)
	}
	defer y.Destroy()
	newSession(t, must(t)(Giant(n)), []string{"x"}, []string{"y"}, []ort.Value{x}, []ort.Value{y})

	// A small one runs and computes x·W: with x = I, y = W.
	const small = 8
	eye := make([]float32, small*small)
	for i := range small {
		eye[i*small+i] = 1
	}
	shapes := map[string][]int64{"x": {small, small}, "y": {small, small}}
	out := run(t, must(t)(Giant(small)), map[string][]float32{"x": eye}, []string{"x"}, []string{"y"}, shapes)["y"]
	if w := uniform(small*small, 1/math.Sqrt(small), 2); !equal(out, w) {
		t.Errorf("Giant(%d) with x = I gave %v, want W = %v", small, out, w)
	}
}

func TestInvalidSizes(t *testing.T) {
	for name, f := range map[string]func() ([]byte, error){
		"Slow(0, 8)": func() ([]byte, error) { return Slow(0, 8) },
		"Slow(8, 0)": func() ([]byte, error) { return Slow(8, 0) },
		"Giant(0)":   func() ([]byte, error) { return Giant(0) },
		"Giant(-1)":  func() ([]byte, error) { return Giant(-1) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s succeeded, want an error", name)
		}
	}
}

func TestDeterministic(t *testing.T) {
	for name, f := range map[string]func() ([]byte, error){
		"Slow":       func() ([]byte, error) { return Slow(10, 32) },
		"Giant":      func() ([]byte, error) { return Giant(32) },
		"Sqrt":       Sqrt,
		"Reciprocal": Reciprocal,
		"TwoInputs":  TwoInputs,
	} {
		a, b := must(t)(f()), must(t)(f())
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two generations differ", name)
		}
	}
}

func equal(a, b []float32) bool {
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

// BenchmarkSlow and BenchmarkGiant measure the run times quoted in the
// documentation of Slow and Giant:
//
//	go test ./models/testmodels -run '^$' -bench . -benchtime 5x
func BenchmarkSlow(b *testing.B) {
	benchmarkRun(b, must(b)(Slow(400, 512)), []int64{1, 512})
}

func BenchmarkGiant(b *testing.B) {
	benchmarkRun(b, must(b)(Giant(1536)), []int64{1536, 1536})
}

func benchmarkRun(b *testing.B, model []byte, shape []int64) {
	x, err := ort.NewEmptyTensor[float32](ort.NewShape(shape...))
	if err != nil {
		b.Fatal(err)
	}
	defer x.Destroy()
	for i := range x.GetData() {
		x.GetData()[i] = float32(i%5) / 5
	}
	y, err := ort.NewEmptyTensor[float32](ort.NewShape(shape...))
	if err != nil {
		b.Fatal(err)
	}
	defer y.Destroy()
	s := newSession(b, model, []string{"x"}, []string{"y"}, []ort.Value{x}, []ort.Value{y})
	if err := s.Run(); err != nil { // warm-up
		b.Fatal(err)
	}
	for b.Loop() {
		if err := s.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
