package demo

import "math"

// RoundFloat16 returns f rounded to the nearest IEEE 754 binary16 value
// (ties to even) and widened back to float32. Values beyond the float16
// range become ±Inf, values below half the smallest subnormal become ±0, and
// NaN stays NaN.
func RoundFloat16(f float32) float32 {
	return float16ToFloat32(float32ToFloat16(f))
}

// float32ToFloat16 converts f to the bits of the nearest binary16 value,
// rounding ties to even. NaN becomes a quiet NaN with the same sign.
func float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff

	if exp == 0xff { // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}

	e := exp - 127 + 15 // exponent rebiased for binary16
	switch {
	case e >= 0x1f:
		return sign | 0x7c00 // too large even before rounding
	case e <= 0:
		// Subnormal (or zero) in binary16: the result is full>>shift with
		// the implicit leading bit made explicit. Anything below 2^-25
		// (e < -10) rounds to zero; float32 subnormals land there too.
		if e < -10 {
			return sign
		}
		full := mant | 0x800000
		shift := uint32(14 - e) // 14..24
		h := full >> shift
		rem := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++ // may carry into the exponent field: the smallest normal
		}
		return sign | uint16(h)
	}

	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry out of the mantissa bumps the exponent, up to Inf
	}
	return sign | uint16(h)
}

// float16ToFloat32 widens binary16 bits to float32; every binary16 value,
// subnormals included, is exactly representable.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)

	switch {
	case exp == 0x1f: // Inf or NaN, payload kept
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		// Subnormal: mant·2^-24. Shift the leading one into the implicit
		// position, lowering the exponent from that of 2^-14 each step.
		e := uint32(127 - 14)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
