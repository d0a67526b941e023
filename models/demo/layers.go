package demo

import (
	"math"
	"strconv"

	"github.com/vigil-av/vigil/models/onnxgraph"
)

// layers adds the weights of conv and dense layers to a graph and names the
// tensors in order: conv1, conv2, …, fc1, fc2, …
type layers struct {
	b     *onnxgraph.Builder
	w     *weights
	convs int
	fcs   int
}

// conv adds Conv (no padding) followed by ReLU and returns the output name.
// The bias is small next to the weights so each filter's response to the
// input, not its offset, dominates.
func (l *layers) conv(in string, cin, cout, kernel, stride int) string {
	l.convs++
	name := "conv" + strconv.Itoa(l.convs)
	fanIn := cin * kernel * kernel
	l.b.AddInitializer(name+".weight", dims(cout, cin, kernel, kernel), l.w.he(cout*fanIn, fanIn))
	l.b.AddInitializer(name+".bias", dims(cout), l.w.uniform(cout, 0.1/math.Sqrt(float64(fanIn))))
	l.b.AddNode("Conv", []string{in, name + ".weight", name + ".bias"}, []string{name},
		onnxgraph.Ints("kernel_shape", int64(kernel), int64(kernel)),
		onnxgraph.Ints("strides", int64(stride), int64(stride)))
	l.b.AddNode("Relu", []string{name}, []string{name + ".relu"})
	return name + ".relu"
}

// dense adds Gemm (y = x·Wᵀ + b, W stored [out, in]) with an optional ReLU
// and returns the output name.
func (l *layers) dense(in string, nin, nout int, relu bool) string {
	l.fcs++
	name := "fc" + strconv.Itoa(l.fcs)
	l.b.AddInitializer(name+".weight", dims(nout, nin), l.w.he(nout*nin, nin))
	l.b.AddInitializer(name+".bias", dims(nout), l.w.uniform(nout, 0.1/math.Sqrt(float64(nin))))
	l.b.AddNode("Gemm", []string{in, name + ".weight", name + ".bias"}, []string{name},
		onnxgraph.Int("transB", 1))
	if !relu {
		return name
	}
	l.b.AddNode("Relu", []string{name}, []string{name + ".relu"})
	return name + ".relu"
}

// controlsHead maps the [1,3] pre-activations to the output contract:
// steering = Tanh, acceleration and braking = Sigmoid, concatenated into
// OutputName.
func controlsHead(b *onnxgraph.Builder, logits string, batch bool) {
	b.AddNode("Split", []string{logits}, []string{"steer.logit", "accel.logit", "brake.logit"},
		onnxgraph.Int("axis", 1))
	b.AddNode("Tanh", []string{"steer.logit"}, []string{"steer"})
	b.AddNode("Sigmoid", []string{"accel.logit"}, []string{"accel"})
	b.AddNode("Sigmoid", []string{"brake.logit"}, []string{"brake"})
	b.AddNode("Concat", []string{"steer", "accel", "brake"}, []string{OutputName},
		onnxgraph.Int("axis", 1))
	shape := OutputShape
	if batch {
		shape = batchShape(OutputShape)
	}
	b.AddOutput(OutputName, shape...)
}

func dims(d ...int) []int64 {
	out := make([]int64, len(d))
	for i, v := range d {
		out[i] = int64(v)
	}
	return out
}
