package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// DType is a tensor element type, numbered as ONNX's TensorProto.DataType
// (the same numbering as inference.DType).
type DType uint8

// Element types the protocol carries.
const (
	Float32  DType = 1
	Uint8    DType = 2
	Int8     DType = 3
	Uint16   DType = 4
	Int16    DType = 5
	Int32    DType = 6
	Int64    DType = 7
	Bool     DType = 9
	Float16  DType = 10
	Float64  DType = 11
	Uint32   DType = 12
	Uint64   DType = 13
	BFloat16 DType = 16
)

var dtypeNames = [...]string{
	Float32: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16",
	Int16: "int16", Int32: "int32", Int64: "int64", Bool: "bool",
	Float16: "float16", Float64: "float64", Uint32: "uint32",
	Uint64: "uint64", BFloat16: "bfloat16",
}

var dtypeSizes = [...]uint8{
	Float32: 4, Uint8: 1, Int8: 1, Uint16: 2, Int16: 2, Int32: 4, Int64: 8,
	Bool: 1, Float16: 2, Float64: 8, Uint32: 4, Uint64: 8, BFloat16: 2,
}

// Size is the size of one element in bytes, 0 for a dtype the protocol does
// not carry.
func (d DType) Size() int {
	if int(d) < len(dtypeSizes) {
		return int(dtypeSizes[d])
	}
	return 0
}

func (d DType) String() string {
	if int(d) < len(dtypeNames) && dtypeNames[d] != "" {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Tensor is one named tensor of a request or response. Data holds the
// elements as little-endian bytes in row-major order.
//
// After decoding, Data points into the payload that was decoded (it is not
// copied) and is valid as long as that buffer is. Name and Shape are the
// tensor's own and are reused by the next decode.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte

	own []byte    // storage for Set*, never a payload
	f32 []float32 // storage for Float32s on hosts where a view is impossible
}

// NumElements is the product of the dims (1 for a scalar).
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// ShapeString formats dtype and shape as "float32[1 3 66 200]" for messages.
func (t *Tensor) ShapeString() string { return fmt.Sprintf("%s%v", t.DType, t.Shape) }

// hostLittleEndian is true on the hosts Vigil runs on (amd64, arm64); the
// fast paths that reinterpret bytes as float32 depend on it.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Float32s returns the elements of a float32 tensor, nil for other dtypes.
// On little-endian hosts with 4-byte aligned data (always so for data
// decoded from a buffer that is 8-byte aligned at the payload's start) it is
// a view of Data, not a copy: it shares Data's lifetime, and writes to it
// change Data. Otherwise it is converted into storage the tensor reuses.
func (t *Tensor) Float32s() []float32 {
	if t.DType != Float32 {
		return nil
	}
	n := len(t.Data) / 4
	if n == 0 {
		return t.f32[:0]
	}
	if hostLittleEndian && uintptr(unsafe.Pointer(&t.Data[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&t.Data[0])), n)
	}
	if cap(t.f32) < n {
		t.f32 = make([]float32, n)
	}
	t.f32 = t.f32[:n]
	for i := range t.f32 {
		t.f32[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return t.f32
}

// SetFloat32 makes t a float32 tensor with a copy of v, reusing t's own
// storage (never memory Data pointed into after a decode).
func (t *Tensor) SetFloat32(name string, shape []int64, v []float32) {
	t.Name, t.DType = name, Float32
	t.Shape = append(t.Shape[:0], shape...)
	n := 4 * len(v)
	if cap(t.own) < n {
		t.own = make([]byte, n)
	}
	t.own = t.own[:n]
	if hostLittleEndian && len(v) > 0 {
		copy(t.own, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), n))
	} else {
		for i, x := range v {
			binary.LittleEndian.PutUint32(t.own[4*i:], math.Float32bits(x))
		}
	}
	t.Data = t.own
}

// SetRaw makes t a tensor of dtype d with a copy of data (little-endian
// elements), reusing t's own storage.
func (t *Tensor) SetRaw(name string, d DType, shape []int64, data []byte) {
	t.Name, t.DType = name, d
	t.Shape = append(t.Shape[:0], shape...)
	t.own = append(t.own[:0], data...)
	t.Data = t.own
}

// check validates t against the protocol's layout rules.
func (t *Tensor) check() error {
	if len(t.Name) == 0 {
		return invalidf("tensor with an empty name")
	}
	if err := checkTextString("tensor name", t.Name, MaxNameLen); err != nil {
		return err
	}
	size := t.DType.Size()
	if size == 0 {
		return invalidf("tensor %q: unsupported dtype %d", t.Name, uint8(t.DType))
	}
	if len(t.Shape) > MaxRank {
		return invalidf("tensor %q: rank %d, the limit is %d", t.Name, len(t.Shape), MaxRank)
	}
	n, err := elements(t.Shape, size)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if int64(len(t.Data)) != n*int64(size) {
		return invalidf("tensor %q: %s holds %d bytes, data has %d", t.Name, t.ShapeString(), n*int64(size), len(t.Data))
	}
	return nil
}

// elements multiplies dims, refusing negative dims and products whose data
// would not fit in a frame.
func elements(shape []int64, size int) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, invalidf("negative dim %d in %v", d, shape)
		}
		if d != 0 && n > MaxPayload/int64(size)/d {
			// Keep multiplying only to find a zero dim, which makes any
			// other dims harmless.
			for _, e := range shape {
				if e == 0 {
					return 0, nil
				}
			}
			return 0, invalidf("shape %v is larger than a frame", shape)
		}
		n *= d
	}
	return n, nil
}

// appendTensor appends t's block; t must have passed check.
func appendTensor(dst []byte, t *Tensor) []byte {
	dst = appendU16(dst, uint16(len(t.Name)))
	dst = append(dst, byte(t.DType), byte(len(t.Shape)))
	dst = appendU32(dst, uint32(len(t.Data)))
	dst = appendPadded(dst, t.Name)
	for _, d := range t.Shape {
		dst = appendU64(dst, uint64(d))
	}
	return appendPadded(dst, t.Data)
}

// decodeTensor reads one tensor block into t, reusing its name and shape.
func decodeTensor(c *cursor, t *Tensor, i int) error {
	nameLen := int(c.u16())
	dt := DType(c.u8())
	rank := int(c.u8())
	dataLen := int(c.u32())
	if c.err != nil {
		return fmt.Errorf("tensor %d: %w", i, c.err)
	}
	want, err := decodeTensorHead(c, t, i, nameLen, dt, rank)
	if err != nil {
		return err
	}
	if int64(dataLen) != want {
		return invalidf("tensor %q: %s needs %d bytes of data, data_len is %d", t.Name, t.ShapeString(), want, dataLen)
	}
	t.Data = c.padded(dataLen)
	if c.err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, c.err)
	}
	return nil
}

// decodeTensorHead checks a tensor block's name length, dtype and rank,
// reads its name and shape into t (reusing them) and returns the bytes
// of data the shape needs: the part inline and shared blocks have in
// common.
func decodeTensorHead(c *cursor, t *Tensor, i, nameLen int, dt DType, rank int) (int64, error) {
	if nameLen == 0 || nameLen > MaxNameLen {
		return 0, invalidf("tensor %d: name length %d, want 1 to %d", i, nameLen, MaxNameLen)
	}
	if rank > MaxRank {
		return 0, invalidf("tensor %d: rank %d, the limit is %d", i, rank, MaxRank)
	}
	size := dt.Size()
	if size == 0 {
		return 0, invalidf("tensor %d: unsupported dtype %d", i, uint8(dt))
	}
	name := c.padded(nameLen)
	if c.err != nil {
		return 0, fmt.Errorf("tensor %d: %w", i, c.err)
	}
	if err := checkText("tensor name", name, MaxNameLen); err != nil {
		return 0, fmt.Errorf("tensor %d: %w", i, err)
	}
	setString(&t.Name, name)
	t.DType = dt
	if cap(t.Shape) < rank {
		t.Shape = make([]int64, rank, MaxRank)
	}
	t.Shape = t.Shape[:rank]
	for j := range t.Shape {
		t.Shape[j] = int64(c.u64())
	}
	if c.err != nil {
		return 0, fmt.Errorf("tensor %q: %w", t.Name, c.err)
	}
	n, err := elements(t.Shape, size)
	if err != nil {
		return 0, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return n * int64(size), nil
}

// resizeTensors sets len(*ts) to n, keeping (and so reusing) the tensors
// that were there before.
func resizeTensors(ts *[]Tensor, n int) {
	if cap(*ts) < n {
		grown := make([]Tensor, n, max(n, MaxTensors/2))
		copy(grown, (*ts)[:cap(*ts)])
		*ts = grown
		return
	}
	*ts = (*ts)[:n]
}
