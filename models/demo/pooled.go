package demo

import "github.com/vigil-av/vigil/models/onnxgraph"

// Degraded returns the degraded model, cheap enough to run on a busy CPU:
// AveragePool over 11×20 tiles (3×66×200 → 3×6×10), Flatten, a dense layer of
// 32 with ReLU, a dense output layer of 3 and the controls head. Its weights
// come from DegradedSeed.
func Degraded() ([]byte, error) { return degraded(false) }

func degraded(batch bool) ([]byte, error) {
	const name = "pooled-mlp"
	b := newModel(name, RoleDegraded, Version, DegradedSeed, batch,
		"Average-pooled MLP with seeded He-uniform weights: the CPU fallback (a demo model, not trained).")
	l := &layers{b: b, w: newWeights(DegradedSeed, nil)}

	b.AddNode("AveragePool", []string{InputName}, []string{"pool"},
		onnxgraph.Ints("kernel_shape", 11, 20),
		onnxgraph.Ints("strides", 11, 20))
	b.AddNode("Flatten", []string{"pool"}, []string{"flatten"}, onnxgraph.Int("axis", 1))
	x := l.dense("flatten", 3*6*10, 32, true)
	x = l.dense(x, 32, 3, false)
	controlsHead(b, x, batch)
	return b.Marshal()
}
