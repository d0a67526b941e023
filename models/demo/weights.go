package demo

import (
	"math"
	"math/rand/v2"
)

// weights draws initializer values from a PCG source. Only PCG.Uint64 is
// used, whose output the Go standard library specifies, and the arithmetic
// after it is exact or correctly rounded, so the values are the same on every
// platform and Go release.
type weights struct {
	src *rand.PCG
	// round is applied to every value, in drawing order, before it is
	// stored: the identity for float32 models, RoundFloat16 for the shadow,
	// a seeded perturbation (perturb) for the primary's second version.
	round func(float32) float32
}

func newWeights(seed uint64, round func(float32) float32) *weights {
	if round == nil {
		round = func(f float32) float32 { return f }
	}
	return &weights{src: rand.NewPCG(seed, 0), round: round}
}

// uniform returns n values drawn uniformly from [-limit, limit).
func (w *weights) uniform(n int, limit float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		u := float64(w.src.Uint64()>>11) / (1 << 53) // [0, 1), exact
		v := float64((2*u - 1) * limit)
		out[i] = w.round(float32(v))
	}
	return out
}

// he returns n values with the He-uniform scale for a layer of the given
// fan-in: the variance 2/fanIn keeps ReLU activations from growing or
// vanishing from layer to layer.
func (w *weights) he(n, fanIn int) []float32 {
	return w.uniform(n, math.Sqrt(6/float64(fanIn)))
}

// perturb returns an adjustment for newWeights that scales each value it is
// given by its own factor drawn uniformly from [1-rel, 1+rel) off a PCG
// source seeded with seed: every weight moves by at most rel of itself, and
// the same seed gives the same factors in the same order.
func perturb(seed uint64, rel float64) func(float32) float32 {
	src := rand.NewPCG(seed, 0)
	return func(f float32) float32 {
		u := float64(src.Uint64()>>11) / (1 << 53) // [0, 1), exact
		return float32(float64(f) * (1 + (2*u-1)*rel))
	}
}
