package wire

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// pad8 rounds n up to a multiple of 8.
func pad8(n int) int { return (n + 7) &^ 7 }

// cursor reads little-endian fields from a payload. The first read past the
// end sets err to a truncation error and makes every later read return
// zeros, so a decoder checks err once per block.
type cursor struct {
	b   []byte
	off int
	err error
}

func (c *cursor) take(n int) []byte {
	if c.err != nil {
		return nil
	}
	if n < 0 || n > len(c.b)-c.off {
		c.err = truncatedf("%d bytes needed at offset %d, payload has %d", n, c.off, len(c.b))
		return nil
	}
	p := c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return p
}

func (c *cursor) u8() uint8 {
	if p := c.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (c *cursor) u16() uint16 {
	if p := c.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (c *cursor) u32() uint32 {
	if p := c.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (c *cursor) u64() uint64 {
	if p := c.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (c *cursor) f32() float32 { return math.Float32frombits(c.u32()) }
func (c *cursor) f64() float64 { return math.Float64frombits(c.u64()) }

// padded takes n bytes and the zero padding after them up to pad8(n).
func (c *cursor) padded(n int) []byte {
	p := c.take(pad8(n))
	if p == nil {
		return nil
	}
	return p[:n:n]
}

// end reports an error when bytes remain after the layout's end.
func (c *cursor) end() error {
	if c.err != nil {
		return c.err
	}
	if c.off != len(c.b) {
		return invalidf("%d bytes after the end of the layout (payload of %d)", len(c.b)-c.off, len(c.b))
	}
	return nil
}

// setString assigns b to *s, allocating only when the text changed: a
// decoder that sees the same names request after request allocates nothing.
func setString(s *string, b []byte) {
	if *s != string(b) {
		*s = string(b)
	}
}

// checkText validates a text field: at most max bytes of UTF-8 without NUL.
func checkText(field string, b []byte, max int) error {
	if len(b) > max {
		return invalidf("%s of %d bytes, the limit is %d", field, len(b), max)
	}
	if !utf8.Valid(b) {
		return invalidf("%s is not valid UTF-8", field)
	}
	for _, x := range b {
		if x == 0 {
			return invalidf("%s contains a NUL byte", field)
		}
	}
	return nil
}

func checkTextString(field string, s string, max int) error {
	if len(s) > max {
		return invalidf("%s of %d bytes, the limit is %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s is not valid UTF-8", field)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return invalidf("%s contains a NUL byte", field)
		}
	}
	return nil
}

var zeros [8]byte

// appendPadded appends s and zero bytes up to pad8(len(s)).
func appendPadded[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = append(dst, s...)
	return append(dst, zeros[:pad8(len(s))-len(s)]...)
}

func appendU16(dst []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(dst, v) }
func appendU32(dst []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(dst, v) }
func appendU64(dst []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(dst, v) }
