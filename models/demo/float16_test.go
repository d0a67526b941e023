package demo

import (
	"math"
	"testing"
)

func TestFloat32ToFloat16Cases(t *testing.T) {
	pow2 := func(e int) float32 { return float32(math.Ldexp(1, e)) }
	cases := []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0x0000},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"0.1", 0.1, 0x2e66},
		{"1/3", 1.0 / 3, 0x3555},
		{"largest finite", 65504, 0x7bff},
		{"just below the overflow tie", 65519.996, 0x7bff},
		{"overflow tie rounds to Inf (even)", 65520, 0x7c00},
		{"overflow", 1e6, 0x7c00},
		{"negative overflow", -1e6, 0xfc00},
		{"beyond float16 exponent range", 1e38, 0x7c00},
		{"+Inf", float32(math.Inf(1)), 0x7c00},
		{"-Inf", float32(math.Inf(-1)), 0xfc00},
		{"tie 1+2^-11 rounds down to even", 1 + pow2(-11), 0x3c00},
		{"tie 1+3·2^-11 rounds up to even", 1 + 3*pow2(-11), 0x3c02},
		{"just above a tie rounds up", 1 + pow2(-11) + pow2(-20), 0x3c01},
		{"tie 2049 rounds down to even", 2049, 0x6800},
		{"tie 2051 rounds up to even", 2051, 0x6802},
		{"smallest normal", pow2(-14), 0x0400},
		{"largest subnormal", 1023 * pow2(-24), 0x03ff},
		{"subnormal tie to the smallest normal", 1023.5 * pow2(-24), 0x0400},
		{"smallest subnormal", pow2(-24), 0x0001},
		{"negative smallest subnormal", -pow2(-24), 0x8001},
		{"subnormal tie 1.5 units rounds up to even", 3 * pow2(-25), 0x0002},
		{"subnormal tie 2.5 units rounds down to even", 5 * pow2(-25), 0x0002},
		{"half the smallest subnormal ties to zero", pow2(-25), 0x0000},
		{"just above half the smallest subnormal", pow2(-25) * (1 + pow2(-23)), 0x0001},
		{"negative tiny underflows to -0", -1e-8, 0x8000},
		{"float32 subnormal", pow2(-149), 0x0000},
	}
	for _, c := range cases {
		if got := float32ToFloat16(c.in); got != c.want {
			t.Errorf("%s: float32ToFloat16(%g) = %#04x, want %#04x", c.name, c.in, got, c.want)
		}
	}
}

func TestFloat16NaN(t *testing.T) {
	for _, f := range []float32{float32(math.NaN()), math.Float32frombits(0xff800001), math.Float32frombits(0x7fffffff)} {
		h := float32ToFloat16(f)
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
			t.Errorf("float32ToFloat16(%#08x) = %#04x, want a NaN", math.Float32bits(f), h)
		}
		if r := RoundFloat16(f); r == r {
			t.Errorf("RoundFloat16(NaN) = %g, want NaN", r)
		}
	}
}

// TestFloat16Exhaustive checks every binary16 value: widening is exact
// (value = significand·2^exponent), narrowing it back is the identity, and
// around every midpoint between neighbours the rounding goes to the nearer
// one, or to the even one on the midpoint itself.
func TestFloat16Exhaustive(t *testing.T) {
	for h := range 0x10000 {
		h := uint16(h)
		exp, mant := int(h>>10&0x1f), float64(h&0x3ff)
		f := float16ToFloat32(h)
		var want float64
		switch {
		case exp == 0x1f && mant != 0:
			if f == f {
				t.Fatalf("float16ToFloat32(%#04x) = %g, want NaN", h, f)
			}
			continue
		case exp == 0x1f:
			want = math.Inf(1)
		case exp == 0:
			want = math.Ldexp(mant, -24)
		default:
			want = math.Ldexp(1024+mant, exp-25)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if float64(f) != want || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("float16ToFloat32(%#04x) = %g, want %g", h, f, want)
		}
		if back := float32ToFloat16(f); back != h {
			t.Fatalf("float32ToFloat16(float16ToFloat32(%#04x) = %g) = %#04x", h, f, back)
		}
	}

	// Positive finite neighbours, plus 0x7bff against 0x7c00: the tie at
	// 65520 is where IEEE rounding overflows to Inf.
	for h := uint16(0); h < 0x7c00; h++ {
		lo, hi := float64(float16ToFloat32(h)), float64(float16ToFloat32(h+1))
		if h+1 == 0x7c00 {
			hi = 65536 // where the next binade would start
		}
		mid := float32((lo + hi) / 2) // exact: 12 significant bits
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		for _, sign := range []float32{1, -1} {
			s := uint16(0)
			if sign < 0 {
				s = 0x8000
			}
			check := func(what string, in float32, want uint16) {
				if got := float32ToFloat16(sign * in); got != want|s {
					t.Fatalf("%s of %#04x/%#04x: float32ToFloat16(%g) = %#04x, want %#04x", what, h, h+1, sign*in, got, want|s)
				}
			}
			check("midpoint", mid, even)
			check("below midpoint", math.Nextafter32(mid, 0), h)
			check("above midpoint", math.Nextafter32(mid, float32(math.Inf(1))), h+1)
		}
	}
}
