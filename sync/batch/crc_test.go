package batch

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestCRC32CCombine: the combined checksum of two parts is the checksum
// of the whole, for parts of every length up to a few KiB and some long
// ones.
func TestCRC32CCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 300<<10)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	check := func(a, b []byte) {
		t.Helper()
		want := crc32.Checksum(append(append([]byte(nil), a...), b...), castagnoli)
		if got := crc32cCombine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), len(b)); got != want {
			t.Fatalf("combine of %d and %d bytes = %08x, want %08x", len(a), len(b), got, want)
		}
	}
	for n := 0; n < 2100; n++ {
		check(buf[:n%37], buf[37:37+n])
	}
	check(buf[:5], buf[5:])
	check(nil, buf)
	check(buf[:100<<10], buf[100<<10:])
}
