package batch

// crc32cCombine returns the CRC-32C of a followed by b, given the
// CRC-32C of a (crcA), of b (crcB) and b's length: how a batch of
// stored segments gets its checksum without reading their bodies.
//
// A CRC is linear over GF(2): appending n zero bytes to a message
// multiplies its (pre- and post-conditioned) CRC by x^(8n) modulo the
// polynomial. So crc(a‖b) = crcA · x^(8·len b) mod P ^ crcB, with the
// power built from a table of x^(2^k) mod P, one multiplication per set
// bit of the length.
func crc32cCombine(crcA, crcB uint32, lenB int) uint32 {
	if lenB <= 0 {
		return crcA
	}
	return mulModP(xPow8n(uint64(lenB)), crcA) ^ crcB
}

// castagnoliReflected is the Castagnoli polynomial, bit-reflected as the
// CRC computes with it: bit 31 is x^0.
const castagnoliReflected = 0x82f63b78

// mulModP multiplies a and b, polynomials in reflected form, modulo the
// Castagnoli polynomial.
func mulModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0 && a != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			a ^= m
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// x2k holds x^(2^k) mod P for k = 0..63, reflected.
var x2k = func() (t [64]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = mulModP(p, p)
	}
	return
}()

// xPow8n returns x^(8n) mod P, reflected.
func xPow8n(n uint64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = mulModP(x2k[k%64], p)
		}
	}
	return p
}
