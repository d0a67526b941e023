package inference

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// demoFrame is the demo models' frame: float32 [1,3,66,200], 158 400 bytes,
// values in [0,1).
func demoFrame() []float32 {
	r := rand.New(rand.NewPCG(3, 4))
	d := make([]float32, 3*66*200)
	for i := range d {
		d[i] = r.Float32()
	}
	return d
}

// TestValueKernels checks the block-wise kernels against a plain loop for
// every position of a bad value, at every alignment and length near the
// block edges.
func TestValueKernels(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	plain := func(d []float32, lo, hi float32, ranged, nonFinite bool) int {
		for i, v := range d {
			fin := !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
			if (nonFinite && !fin) || (ranged && fin && (v < lo || v > hi)) {
				return i
			}
		}
		return -1
	}
	backing := make([]float32, 1200)
	for _, n := range []int{0, 1, 2, 3, 511, 512, 513, 1024, 1025, 1100} {
		for _, off := range []int{0, 1} {
			d := backing[off : off+n]
			for _, bad := range []float32{nan, inf, -inf, 2, -0.5, math.MaxFloat32, float32(math.Copysign(0, -1)), 0.9} {
				for _, at := range []int{-1, 0, 1, n / 2, n - 2, n - 1} {
					for i := range d {
						d[i] = float32(i%7) / 7
					}
					if at >= 0 && at < n {
						d[at] = bad
					}
					if got, want := firstNonFinite32(d), plain(d, 0, 0, false, true); got != want {
						t.Fatalf("firstNonFinite32 n=%d off=%d bad=%v at=%d: %d, want %d", n, off, bad, at, got, want)
					}
					for _, r := range []Range{{0, 1}, {-1, 1}, {0, 0.875}, {-2, -1}} {
						for _, nonFinite := range []bool{true, false} {
							if got, want := firstOutside32(d, r.Min, r.Max, nonFinite), plain(d, r.Min, r.Max, true, nonFinite); got != want {
								t.Fatalf("firstOutside32 %v n=%d off=%d bad=%v at=%d nonFinite=%v: %d, want %d", r, n, off, bad, at, nonFinite, got, want)
							}
						}
					}
				}
			}
		}
	}
}

func TestFloat16(t *testing.T) {
	for bits, want := range map[uint16]float64{
		0x0000: 0, 0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: math.Ldexp(1, -24),
		0x7c00: math.Inf(1), 0xfc00: math.Inf(-1), 0x3555: 0.333251953125,
	} {
		if got := float64(float16(bits)); got != want {
			t.Errorf("float16(%#04x) = %v, want %v", bits, got, want)
		}
	}
	if v := float16(0x7e00); !math.IsNaN(float64(v)) {
		t.Errorf("float16(0x7e00) = %v, want NaN", v)
	}
}

// TestRawValueChecks: float64, float16 and bfloat16 inputs travel as bytes
// and are checked all the same.
func TestRawValueChecks(t *testing.T) {
	f64 := func(vs ...float64) []byte {
		b := make([]byte, 8*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b
	}
	u16 := func(vs ...uint16) []byte {
		b := make([]byte, 2*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint16(b[2*i:], v)
		}
		return b
	}
	both := valueCheck{finite: true, ranged: true, r: Range{0, 1}}
	finite := valueCheck{finite: true}
	rangeOnly := valueCheck{ranged: true, r: Range{0, 1}}
	for _, c := range []struct {
		name   string
		check  valueCheck
		t      Tensor
		reason string
		index  int
	}{
		{"float64 ok", both, Tensor{DType: Float64, Raw: f64(0, 0.5, 1)}, "", 0},
		{"float64 nan", finite, Tensor{DType: Float64, Raw: f64(0, math.NaN(), 1)}, InvalidNaN, 1},
		{"float64 -inf", finite, Tensor{DType: Float64, Raw: f64(0, 5, math.Inf(-1))}, InvalidInf, 2},
		{"float64 range", both, Tensor{DType: Float64, Raw: f64(0, 1.0000001)}, InvalidRange, 1},
		{"float64 range passes inf", rangeOnly, Tensor{DType: Float64, Raw: f64(math.Inf(1), 0.5)}, "", 0},
		{"float16 ok", both, Tensor{DType: Float16, Raw: u16(0x0000, 0x3c00)}, "", 0},
		{"float16 nan", finite, Tensor{DType: Float16, Raw: u16(0x3c00, 0x7e00)}, InvalidNaN, 1},
		{"float16 inf", finite, Tensor{DType: Float16, Raw: u16(0xfc00)}, InvalidInf, 0},
		{"float16 range", both, Tensor{DType: Float16, Raw: u16(0x3c00, 0xc000)}, InvalidRange, 1},
		{"bfloat16 ok", both, Tensor{DType: BFloat16, Raw: u16(0x3f80, 0x0000)}, "", 0},
		{"bfloat16 nan", finite, Tensor{DType: BFloat16, Raw: u16(0x7fc0)}, InvalidNaN, 0},
		{"bfloat16 inf", finite, Tensor{DType: BFloat16, Raw: u16(0x3f80, 0x3f80, 0x7f80)}, InvalidInf, 2},
		{"bfloat16 range", both, Tensor{DType: BFloat16, Raw: u16(0x4000)}, InvalidRange, 0},
		{"int32 not checked", both, Tensor{DType: Int32, Raw: f64(math.NaN())}, "", 0},
	} {
		c.t.Name = "x"
		c.t.Shape = []int64{int64(len(c.t.Raw) / max(c.t.DType.Size(), 1))}
		err := c.check.checkValues(&c.t)
		if c.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		ie, ok := err.(*InputError)
		if !ok || ie.Reason != c.reason || ie.Index != c.index || ie.Input != "x" {
			t.Errorf("%s: %v, want %s at %d", c.name, err, c.reason, c.index)
		}
	}
}

// BenchmarkInputCheck measures the value checks on the 158 KB demo frame
// beside the copy of it that every request makes anyway (Router.Infer copies
// the frame into the request's own buffer).
func BenchmarkInputCheck(b *testing.B) {
	frame := demoFrame()
	in := Tensor{Name: "frame", DType: Float32, Shape: []int64{1, 3, 66, 200}, Data: frame}
	for _, c := range []struct {
		name  string
		check valueCheck
	}{
		{"non_finite", valueCheck{finite: true}},
		{"non_finite+range", valueCheck{finite: true, ranged: true, r: Range{0, 1}}},
		{"range_only", valueCheck{ranged: true, r: Range{0, 1}}},
		{"non_finite+range_below_0", valueCheck{finite: true, ranged: true, r: Range{-1, 1}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.check.checkValues(&in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("copy", func(b *testing.B) {
		dst := make([]float32, len(frame))
		b.SetBytes(int64(4 * len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			copy(dst, frame)
		}
	})
}
