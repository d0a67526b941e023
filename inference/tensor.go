package inference

import (
	"errors"
	"fmt"
	"math"
)

// DType is a tensor element type, numbered as ONNX's TensorProto.DataType
// (and so in the socket protocol). The zero value, DTypeUnset, is taken as
// Float32, the type of Vigil's own models.
type DType uint8

// Element types.
const (
	DTypeUnset DType = 0
	Float32    DType = 1
	Uint8      DType = 2
	Int8       DType = 3
	Uint16     DType = 4
	Int16      DType = 5
	Int32      DType = 6
	Int64      DType = 7
	Bool       DType = 9
	Float16    DType = 10
	Float64    DType = 11
	Uint32     DType = 12
	Uint64     DType = 13
	BFloat16   DType = 16
)

var dtypeInfo = map[DType]struct {
	name string
	size int
}{
	Float32: {"float32", 4}, Uint8: {"uint8", 1}, Int8: {"int8", 1},
	Uint16: {"uint16", 2}, Int16: {"int16", 2}, Int32: {"int32", 4},
	Int64: {"int64", 8}, Bool: {"bool", 1}, Float16: {"float16", 2},
	Float64: {"float64", 8}, Uint32: {"uint32", 4}, Uint64: {"uint64", 8},
	BFloat16: {"bfloat16", 2},
}

func (d DType) normal() DType {
	if d == DTypeUnset {
		return Float32
	}
	return d
}

func (d DType) String() string {
	if i, ok := dtypeInfo[d.normal()]; ok {
		return i.name
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Size is the number of bytes of one element, 0 for unsupported types.
func (d DType) Size() int { return dtypeInfo[d.normal()].size }

// MarshalText writes the dtype's name.
func (d DType) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a dtype's name, as MarshalText writes it.
func (d *DType) UnmarshalText(b []byte) error {
	v, err := ParseDType(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDType reads a dtype name such as "float32".
func ParseDType(s string) (DType, error) {
	for d, i := range dtypeInfo {
		if i.name == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown dtype %q", s)
}

// Tensor is a named tensor passed into or out of a backend. Float32 tensors
// carry their elements in Data; every other dtype in Raw, as little-endian
// bytes. The backend copies inputs in and outputs out, so the caller keeps
// ownership of Data and Raw and may reuse them for the next request.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []float32
	Raw   []byte
}

// InputError says how a request's inputs differ from what the model
// expects, or which value of an input the router refused (see InputChecks).
type InputError struct {
	Input    string // input name, or "" when the count is wrong
	Expected string
	Got      string
	// Reason is InvalidNaN, InvalidInf or InvalidRange when the input was
	// refused for a value, and Index is then the first such element
	// (row-major); Reason is "" when the input does not fit the contract.
	Reason string
	Index  int
}

func (e *InputError) Error() string {
	if e.Input == "" {
		return fmt.Sprintf("bad request: expected %s, got %s", e.Expected, e.Got)
	}
	return fmt.Sprintf("bad request: input %q: expected %s, got %s", e.Input, e.Expected, e.Got)
}

// Why an output was rejected.
const (
	InvalidNaN   = "nan"
	InvalidInf   = "inf"
	InvalidRange = "out_of_range"
)

// InvalidOutputError reports the first output element that is NaN, infinite
// or outside the model's declared range. The outputs are still copied to the
// caller so that they can be logged or compared.
type InvalidOutputError struct {
	Output string
	Index  int
	Value  float32
	Reason string // InvalidNaN, InvalidInf or InvalidRange
	Range  Range  // the declared range when Reason is InvalidRange
}

func (e *InvalidOutputError) Error() string {
	if e.Reason == InvalidRange {
		return fmt.Sprintf("invalid output %q[%d] = %g: outside the declared range [%g, %g]", e.Output, e.Index, e.Value, e.Range.Min, e.Range.Max)
	}
	return fmt.Sprintf("invalid output %q[%d] = %g (%s)", e.Output, e.Index, e.Value, e.Reason)
}

// ErrDeadline is matched (errors.Is) by every error that reports a request
// not answered by its deadline.
var ErrDeadline = errors.New("deadline exceeded")

// ErrClosed is returned by Run after Close has begun.
var ErrClosed = errors.New("backend closed")

// DeadlineError tells where a request was when its deadline passed.
type DeadlineError struct {
	Backend string
	// Stage is "before start" (the deadline had passed on arrival),
	// "queued" (every session of the backend was busy) or "running".
	Stage string
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("backend %s: deadline exceeded while %s", e.Backend, e.Stage)
}

// Is makes errors.Is(err, ErrDeadline) true.
func (e *DeadlineError) Is(target error) bool { return target == ErrDeadline }

// checkValues returns the first NaN, Inf or out-of-range element of data.
// ranges is nil, one range for all, or one per element of a frame (data
// may hold several frames).
func checkValues(name string, data []float32, ranges []Range) error {
	for i, v := range data {
		switch {
		case v != v:
			return &InvalidOutputError{Output: name, Index: i, Value: v, Reason: InvalidNaN}
		case v > math.MaxFloat32 || v < -math.MaxFloat32:
			return &InvalidOutputError{Output: name, Index: i, Value: v, Reason: InvalidInf}
		}
		var r Range
		switch len(ranges) {
		case 0:
			continue
		case 1:
			r = ranges[0]
		default:
			r = ranges[i%len(ranges)]
		}
		if v < r.Min || v > r.Max {
			return &InvalidOutputError{Output: name, Index: i, Value: v, Reason: InvalidRange, Range: r}
		}
	}
	return nil
}
