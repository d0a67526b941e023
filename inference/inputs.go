package inference

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unsafe"
)

// MetaInputRangePrefix followed by an input name declares the range of that
// input's values: JSON [min,max], for every element. Only floating-point
// inputs take one.
const MetaInputRangePrefix = "vigil.input_range."

// Settings of InputChecks.
const (
	NonFiniteReject = "reject"
	NonFinitePass   = "pass"
	RangeEnforce    = "enforce"
	RangeIgnore     = "ignore"
)

// InputChecks says which values of a request's floating-point inputs
// (float32, float16, bfloat16, float64) the router refuses before any
// backend sees them. A refused request gets an *InputError that names the
// input and its first offending element, and changes nothing else: no
// backend runs, the watchdog hears nothing.
type InputChecks struct {
	// NonFinite is "reject" (the default): NaN, +Inf or -Inf anywhere in
	// an input refuses the request; or "pass", for models that take them.
	NonFinite string `yaml:"non_finite" json:"non_finite"`
	// Range is "enforce" (the default): values outside the range a model
	// declares for an input (metadata vigil.input_range.<input>) refuse the
	// request; or "ignore". Inputs without a declared range are not
	// range-checked either way. With non_finite: pass, NaN and ±Inf are
	// not refused as out of range.
	Range string `yaml:"range" json:"range"`
}

func (c *InputChecks) defaults() {
	if c.NonFinite == "" {
		c.NonFinite = NonFiniteReject
	}
	if c.Range == "" {
		c.Range = RangeEnforce
	}
}

// Validate names the field that holds a value it does not know.
func (c InputChecks) Validate() error {
	switch c.NonFinite {
	case "", NonFiniteReject, NonFinitePass:
	default:
		return fmt.Errorf("non_finite %q: want %s (the default) or %s", c.NonFinite, NonFiniteReject, NonFinitePass)
	}
	switch c.Range {
	case "", RangeEnforce, RangeIgnore:
	default:
		return fmt.Errorf("range %q: want %s (the default) or %s", c.Range, RangeEnforce, RangeIgnore)
	}
	return nil
}

// readInputRanges parses the declared input ranges into info.InputRanges.
func (info *ModelInfo) readInputRanges() error {
	info.InputRanges = make([]*Range, len(info.Inputs))
	for i, in := range info.Inputs {
		key := MetaInputRangePrefix + in.Name
		v, ok := info.Metadata[key]
		if !ok {
			continue
		}
		if !in.DType.floating() {
			return fmt.Errorf("%w: model %s: metadata %s: input %q is %s; ranges apply to floating-point inputs only", ErrBadModel, info.Path, key, in.Name, in.DType)
		}
		var r [2]float32
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return fmt.Errorf("%w: model %s: metadata %s: want [min,max] for every element, got %q", ErrBadModel, info.Path, key, v)
		}
		if !(r[0] <= r[1]) {
			return fmt.Errorf("%w: model %s: metadata %s: range %v has min above max", ErrBadModel, info.Path, key, r)
		}
		info.InputRanges[i] = &Range{r[0], r[1]}
	}
	for k := range info.Metadata {
		if name, ok := strings.CutPrefix(k, MetaInputRangePrefix); ok && tensorIndex(info.Inputs, name, 0) < 0 {
			return fmt.Errorf("%w: model %s: metadata %s names no input of the model", ErrBadModel, info.Path, k)
		}
	}
	return nil
}

func (d DType) floating() bool {
	switch d.normal() {
	case Float32, Float16, BFloat16, Float64:
		return true
	}
	return false
}

// valueCheck is what the router checks in one input's values.
type valueCheck struct {
	finite bool // refuse NaN and ±Inf
	ranged bool // refuse finite values outside r
	r      Range
}

// valueChecks settles, per input of the contract, what to check: ranges
// are the intersection of those the backends declare, since any of them may
// see the frame.
func valueChecks(cfg InputChecks, inputs []TensorInfo, models []*ModelInfo) ([]valueCheck, error) {
	checks := make([]valueCheck, len(inputs))
	for i, in := range inputs {
		c := &checks[i]
		if !in.DType.floating() {
			continue
		}
		c.finite = cfg.NonFinite == NonFiniteReject
		if cfg.Range != RangeEnforce {
			continue
		}
		for _, m := range models {
			if i >= len(m.InputRanges) || m.InputRanges[i] == nil {
				continue
			}
			r := *m.InputRanges[i]
			if !c.ranged {
				c.ranged, c.r = true, r
				continue
			}
			c.r.Min, c.r.Max = max(c.r.Min, r.Min), min(c.r.Max, r.Max)
			if c.r.Min > c.r.Max {
				return nil, fmt.Errorf("input %q: the models' declared ranges do not overlap (%s declares [%g, %g])", in.Name, m.Path, r.Min, r.Max)
			}
		}
	}
	return checks, nil
}

// checkValues returns an *InputError for the first refused value of t.
func (c *valueCheck) checkValues(t *Tensor) error {
	if !c.finite && !c.ranged {
		return nil
	}
	i := -1
	switch t.DType.normal() {
	case Float32:
		switch {
		case c.ranged:
			i = firstOutside32(t.Data, c.r.Min, c.r.Max, c.finite)
		case c.finite:
			i = firstNonFinite32(t.Data)
		}
	case Float64:
		i = c.firstRefusedRaw(t.Raw, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	case Float16:
		i = c.firstRefusedRaw(t.Raw, 2, func(b []byte) float64 { return float64(float16(binary.LittleEndian.Uint16(b))) })
	case BFloat16:
		i = c.firstRefusedRaw(t.Raw, 2, func(b []byte) float64 {
			return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
		})
	}
	if i < 0 {
		return nil
	}
	return c.refusal(t, i)
}

// firstRefusedRaw scans little-endian elements of the given size.
func (c *valueCheck) firstRefusedRaw(raw []byte, size int, at func([]byte) float64) int {
	lo, hi := float64(c.r.Min), float64(c.r.Max)
	for i := 0; i+size <= len(raw); i += size {
		v := at(raw[i : i+size])
		finite := v-v == 0
		if (c.finite && !finite) || (c.ranged && finite && (v < lo || v > hi)) {
			return i / size
		}
	}
	return -1
}

// refusal describes element i of t, which the check refused.
func (c *valueCheck) refusal(t *Tensor, i int) *InputError {
	var v float64
	switch t.DType.normal() {
	case Float32:
		v = float64(t.Data[i])
	case Float64:
		v = math.Float64frombits(binary.LittleEndian.Uint64(t.Raw[8*i:]))
	case Float16:
		v = float64(float16(binary.LittleEndian.Uint16(t.Raw[2*i:])))
	case BFloat16:
		v = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Raw[2*i:])) << 16))
	}
	e := &InputError{Input: t.Name, Index: i, Expected: "finite values"}
	switch {
	case math.IsNaN(v):
		e.Reason, e.Got = InvalidNaN, "NaN"
	case math.IsInf(v, 0):
		e.Reason, e.Got = InvalidInf, fmt.Sprint(v)
	default:
		bits := 32
		if t.DType.normal() == Float64 {
			bits = 64
		}
		e.Reason, e.Got = InvalidRange, strconv.FormatFloat(v, 'g', -1, bits)
		e.Expected = fmt.Sprintf("values in the declared range [%g, %g]", c.r.Min, c.r.Max)
	}
	e.Got += fmt.Sprintf(" at index %d %v", i, coordinates(t.Shape, i))
	return e
}

// coordinates turns a row-major element index into one index per axis.
func coordinates(shape []int64, i int) []int64 {
	at := make([]int64, len(shape))
	for k := len(shape) - 1; k >= 0; k-- {
		if d := shape[k]; d > 0 {
			at[k] = int64(i) % d
			i /= int(d)
		}
	}
	return at
}

// The float32 kernels test a block of elements at a time without
// branching, two elements to a uint64, and search a block element by
// element only when the test flags it. The test may flag a block in which
// nothing is refused (see firstOutside32); the search decides.
const (
	block = 512 // elements, an even number
	lanes = 0x8000000080000000
	mag   = 0x7fffffff7fffffff // the magnitude bits of both elements
)

// words views d, which must start 8-byte aligned, as uint64 pairs.
func words(d []float32) []uint64 {
	if len(d) < 2 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&d[0])), len(d)/2)
}

// aligned returns how many leading elements of d to test one by one so
// that the rest starts 8-byte aligned.
func aligned(d []float32) int {
	if len(d) > 0 && uintptr(unsafe.Pointer(&d[0]))%8 != 0 {
		return 1
	}
	return 0
}

// firstNonFinite32 returns the index of the first NaN or ±Inf in d, or -1.
// A float32 is not finite when its exponent bits are all ones, that is when
// its magnitude bits are at least 0x7f800000: adding 0x00800000 to them then
// carries into the element's top bit (and never into the next element).
func firstNonFinite32(d []float32) int {
	const carry = 0x0080000000800000
	notFinite := func(v float32) bool { return !finite32(v) }
	for i := range aligned(d) {
		if notFinite(d[i]) {
			return i
		}
	}
	for base := aligned(d); base < len(d); base += block {
		blk := d[base:min(base+block, len(d))]
		w := words(blk)
		var a0, a1, a2, a3 uint64
		for len(w) >= 4 {
			a0 |= (w[0] & mag) + carry
			a1 |= (w[1] & mag) + carry
			a2 |= (w[2] & mag) + carry
			a3 |= (w[3] & mag) + carry
			w = w[4:]
		}
		for _, x := range w {
			a0 |= (x & mag) + carry
		}
		if (a0|a1|a2|a3)&lanes == 0 && (len(blk)%2 == 0 || finite32(blk[len(blk)-1])) {
			continue
		}
		if k := search(blk, notFinite); k >= 0 {
			return base + k
		}
	}
	return -1
}

func search(blk []float32, refused func(float32) bool) int {
	for k, v := range blk {
		if refused(v) {
			return k
		}
	}
	return -1
}

func finite32(v float32) bool { return math.Float32bits(v)&0x7f800000 != 0x7f800000 }

// firstOutside32 returns the index of the first element of d outside
// [lo, hi], or -1; NaN and ±Inf count as outside when nonFinite, and are
// let through otherwise.
//
// When 0 <= lo, the elements' bits are compared as integers: for a
// non-negative float32 they order as its value does. Each element's
// magnitude m is tested for lo <= m (m + 2^31 - lo keeps its top bit) and
// m <= hi (hi + 2^31 - m keeps its top bit), neither subtraction borrowing
// from the next element; a set sign bit flags the element too (so -0, which
// is in range, flags its block for the exact search). Other ranges are
// tested element by element.
func firstOutside32(d []float32, lo, hi float32, nonFinite bool) int {
	if !(lo >= 0) {
		for i, v := range d {
			if !(v >= lo && v <= hi) && (nonFinite || finite32(v)) {
				return i
			}
		}
		return -1
	}
	refused := func(v float32) bool { return !(v >= lo && v <= hi) && (nonFinite || finite32(v)) }
	blo, bhi := uint64(math.Float32bits(lo)&0x7fffffff), uint64(math.Float32bits(hi))
	lo2, hi2 := blo|blo<<32, (bhi|bhi<<32)|lanes
	for i := range aligned(d) {
		if refused(d[i]) {
			return i
		}
	}
	for base := aligned(d); base < len(d); base += block {
		blk := d[base:min(base+block, len(d))]
		w := words(blk)
		var a0, a1 uint64
		for len(w) >= 2 {
			x, y := w[0], w[1]
			mx, my := x&mag, y&mag
			a0 |= x | ^(((mx | lanes) - lo2) & (hi2 - mx))
			a1 |= y | ^(((my | lanes) - lo2) & (hi2 - my))
			w = w[2:]
		}
		for _, x := range w {
			mx := x & mag
			a0 |= x | ^(((mx | lanes) - lo2) & (hi2 - mx))
		}
		if (a0|a1)&lanes == 0 && (len(blk)%2 == 0 || !refused(blk[len(blk)-1])) {
			continue
		}
		if k := search(blk, refused); k >= 0 {
			return base + k
		}
	}
	return -1
}

// float16 converts IEEE 754 half-precision bits to float32.
func float16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: value is frac·2^-24
		v := float32(frac) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}
