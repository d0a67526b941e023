package demo

import (
	"math"
	"testing"
)

// shadowTolerance bounds |shadow - primary| for each output element on
// random [0,1] frames. Measured on 50 frames (seed 7): at most 8.2e-4 on
// steering and 2.7e-4 on acceleration and braking (ONNX Runtime 1.24.3, CPU,
// one thread). The bound leaves about 6× margin for other CPUs and kernels;
// float16 weights carry a relative error of up to 2^-11 ≈ 4.9e-4 each.
const shadowTolerance = 5e-3

// saturationMargin: a value this close to a bound of its range counts as
// saturated.
const saturationMargin = 0.01

// minSpread is the least max-min, across frames, that each primary/shadow
// output must show: the outputs follow the input instead of being constant.
const minSpread = 0.05

func TestModelsRunInRange(t *testing.T) {
	frames := randomFrames(20, 3)
	for _, role := range Roles {
		t.Run(role, func(t *testing.T) {
			s := newSession(t, mustGenerate(t, role))
			lo := [3]float32{1, 1, 1}
			hi := [3]float32{-1, -1, -1}
			for i, f := range frames {
				out := s.run(t, f)
				for k, v := range out {
					r := OutputRanges[k]
					if math.IsNaN(float64(v)) || v < r[0]+saturationMargin || v > r[1]-saturationMargin {
						t.Fatalf("frame %d: controls[%d] = %g, want inside (%g, %g) with margin %g", i, k, v, r[0], r[1], saturationMargin)
					}
					lo[k], hi[k] = min(lo[k], v), max(hi[k], v)
				}
			}
			t.Logf("controls range over %d frames: min %v max %v", len(frames), lo, hi)
			if role == RoleDegraded {
				return // averages whole tiles of noise: nearly constant on random frames
			}
			for k := range lo {
				if hi[k]-lo[k] < minSpread {
					t.Errorf("controls[%d] spans only [%g, %g] over %d frames, want a spread of at least %g", k, lo[k], hi[k], len(frames), minSpread)
				}
			}
		})
	}
}

func TestShadowTracksPrimary(t *testing.T) {
	primary := newSession(t, mustGenerate(t, RolePrimary))
	shadow := newSession(t, mustGenerate(t, RoleShadow))
	var maxDiff [3]float64
	for _, f := range randomFrames(50, 7) {
		p, s := primary.run(t, f), shadow.run(t, f)
		for k := range p {
			maxDiff[k] = max(maxDiff[k], math.Abs(float64(p[k])-float64(s[k])))
		}
	}
	t.Logf("max |shadow - primary| over 50 frames: %.3g (tolerance %g)", maxDiff, shadowTolerance)
	for k, d := range maxDiff {
		if !(d < shadowTolerance) {
			t.Errorf("controls[%d]: shadow differs from primary by up to %g, want < %g", k, d, shadowTolerance)
		}
	}
	if max(maxDiff[0], maxDiff[1], maxDiff[2]) == 0 {
		t.Error("shadow is bit-exact with primary on every frame; the float16 rounding had no effect")
	}
}
