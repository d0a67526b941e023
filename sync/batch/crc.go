package batch

// crc32cCombine returns the CRC-32C of a followed by b, given the
// CRC-32C of a (crcA), of b (crcB) and b's length: how a batch of
// stored segments gets its checksum without reading their bodies.
//
// A CRC is linear over GF(2): appending n zero bits to a message is a
// linear map on its (pre- and post-conditioned) CRC, computed here as a
// 32x32 bit matrix raised to the power n by repeated squaring, one
// squaring per bit of n. Then crc(a‖b) = zeros(crcA, len b) ^ crcB.
func crc32cCombine(crcA, crcB uint32, lenB int) uint32 {
	if lenB <= 0 {
		return crcA
	}
	// odd is the operator for one zero bit: shift right, and xor the
	// reflected Castagnoli polynomial when the bit shifted out was 1.
	var odd, even [32]uint32
	odd[0] = 0x82f63b78
	row := uint32(1)
	for i := 1; i < 32; i++ {
		odd[i] = row
		row <<= 1
	}
	square(&even, &odd) // two zero bits
	square(&odd, &even) // four
	// Each round squares the operator (8, 16, 32... zero bits, starting
	// at a byte) and applies it for each set bit of lenB.
	n := uint64(lenB)
	for {
		square(&even, &odd)
		if n&1 != 0 {
			crcA = apply(&even, crcA)
		}
		if n >>= 1; n == 0 {
			break
		}
		square(&odd, &even)
		if n&1 != 0 {
			crcA = apply(&odd, crcA)
		}
		if n >>= 1; n == 0 {
			break
		}
	}
	return crcA ^ crcB
}

// apply multiplies the bit matrix m by the vector v.
func apply(m *[32]uint32, v uint32) uint32 {
	var sum uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

// square sets dst to m times m.
func square(dst, m *[32]uint32) {
	for i := range dst {
		dst[i] = apply(m, m[i])
	}
}
