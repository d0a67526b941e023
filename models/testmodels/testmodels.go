package testmodels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/vigil-av/vigil/models/onnxgraph"
)

// Slow returns a model that is slow on purpose and can be stopped between
// its nodes: input "x" float32 [1,width], then `layers` times
// h = Tanh(MatMul(h, W)) with one shared [width,width] weight W, output "y"
// float32 [1,width]. Tanh keeps the values in (-1,1), so any input works.
// The file holds W once, about 4·width² bytes.
//
// RunOptions.Terminate stops a run of it at the next node boundary. Run time
// grows with layers·width² and session creation with layers. Measured with
// ONNX Runtime 1.24.3 on one CPU thread of the 2-core development machine
// (AMD Turin-class VM, shared with other work, so ±40%):
//
//	model             run      generate + create session
//	Slow(400, 512)    ~5 ms    ~0.2 s   (about 12 µs per layer)
//	Slow(4000, 512)   ~47 ms   ~1.2 s
//	Slow(400, 1024)   ~23 ms   ~0.6 s
//	Slow(2000, 1024)  ~130 ms  ~2.9 s
//
// To have a run reliably still in flight when a test acts on it, prefer
// several tens of milliseconds, e.g. Slow(4000, 512), or gate the test on a
// signal rather than a sleep.
func Slow(layers, width int) ([]byte, error) {
	if layers < 1 || width < 1 {
		return nil, fmt.Errorf("testmodels.Slow(%d, %d): layers and width must be at least 1", layers, width)
	}
	b := newModel("slow")
	b.AddInput("x", 1, int64(width))
	// Uniform on ±√(3/width) has variance 1/width, so each MatMul keeps the
	// scale of its input and Tanh neither saturates nor vanishes.
	b.AddInitializer("w", []int64{int64(width), int64(width)}, uniform(width*width, math.Sqrt(3/float64(width)), 1))
	h := "x"
	for i := range layers {
		mm := "mm" + strconv.Itoa(i)
		out := "h" + strconv.Itoa(i)
		if i == layers-1 {
			out = "y"
		}
		b.AddNode("MatMul", []string{h, "w"}, []string{mm})
		b.AddNode("Tanh", []string{mm}, []string{out})
		h = out
	}
	b.AddOutput("y", 1, int64(width))
	return b.Marshal()
}

// Giant returns a model made of one large node that ONNX Runtime cannot
// interrupt: y = MatMul(x, W), x and y float32 [n,n], W an [n,n]
// initializer (4·n² bytes in the file). RunOptions.Terminate takes effect
// only after the node finishes.
//
// Measured with ONNX Runtime 1.24.3 on one CPU thread of the 2-core
// development machine (shared, so ±40%): Giant(1536) runs in about 40 ms
// (9 MiB file, ~0.1 s to generate and load), Giant(2048) in about 120 ms and
// Giant(3072) in about 0.4 s (36 MiB). Time grows with n³.
func Giant(n int) ([]byte, error) {
	if n < 1 {
		return nil, fmt.Errorf("testmodels.Giant(%d): n must be at least 1", n)
	}
	b := newModel("giant")
	b.AddInput("x", int64(n), int64(n))
	b.AddInitializer("w", []int64{int64(n), int64(n)}, uniform(n*n, 1/math.Sqrt(float64(n)), 2))
	b.AddNode("MatMul", []string{"x", "w"}, []string{"y"})
	b.AddOutput("y", int64(n), int64(n))
	return b.Marshal()
}

// Sqrt returns y = Sqrt(x) with x and y float32 [1,4]: a negative input
// gives NaN.
func Sqrt() ([]byte, error) {
	return unary("Sqrt")
}

// Reciprocal returns y = Reciprocal(x) = 1/x with x and y float32 [1,4]: a
// zero input gives ±Inf.
func Reciprocal() ([]byte, error) {
	return unary("Reciprocal")
}

// TwoInputs returns a model with two inputs and two outputs, all float32
// [1,3]: sum = a + b and prod = a * b.
func TwoInputs() ([]byte, error) {
	b := newModel("two-inputs")
	b.AddInput("a", 1, 3)
	b.AddInput("b", 1, 3)
	b.AddNode("Add", []string{"a", "b"}, []string{"sum"})
	b.AddNode("Mul", []string{"a", "b"}, []string{"prod"})
	b.AddOutput("sum", 1, 3)
	b.AddOutput("prod", 1, 3)
	return b.Marshal()
}

func unary(op string) ([]byte, error) {
	b := newModel(op)
	b.AddInput("x", 1, 4)
	b.AddNode(op, []string{"x"}, []string{"y"})
	b.AddOutput("y", 1, 4)
	return b.Marshal()
}

func newModel(name string) *onnxgraph.Builder {
	b := onnxgraph.New(name)
	b.SetProducer("vigil-testmodels", "1")
	b.SetDocString("Vigil test model " + name + "; not for driving.")
	return b
}

// uniform returns n values uniform on [-limit, limit) from a PCG source with
// the given seed, using only its specified Uint64 output.
func uniform(n int, limit float64, seed uint64) []float32 {
	src := rand.NewPCG(seed, 0)
	out := make([]float32, n)
	for i := range out {
		u := float64(src.Uint64()>>11) / (1 << 53)
		out[i] = float32((2*u - 1) * limit)
	}
	return out
}
