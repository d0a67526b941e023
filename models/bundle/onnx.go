package bundle

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ContractFromONNX reads the contract an ONNX model declares: its graph's
// inputs (those that are not initializers) and outputs, with their element
// types and shapes, a symbolic or unknown dimension read as -1. It decodes
// only the few protobuf fields it needs, so it links no ONNX library; a
// model whose inputs or outputs are not tensors, or declare no shape, is
// refused.
func ContractFromONNX(model []byte) (Contract, error) {
	var graph []byte
	err := pbFields(model, func(num, typ int, _ uint64, b []byte) error {
		if num == 7 && typ == wireBytes { // ModelProto.graph
			graph = b
		}
		return nil
	})
	if err != nil {
		return Contract{}, fmt.Errorf("onnx model: %w", err)
	}
	if graph == nil {
		return Contract{}, errors.New("onnx model: no graph (not an ONNX model?)")
	}
	var inputs, outputs [][]byte
	inits := map[string]bool{}
	err = pbFields(graph, func(num, typ int, _ uint64, b []byte) error {
		if typ != wireBytes {
			return nil
		}
		switch num {
		case 5: // GraphProto.initializer: TensorProto, name = 8
			return pbFields(b, func(num, typ int, _ uint64, s []byte) error {
				if num == 8 && typ == wireBytes {
					inits[string(s)] = true
				}
				return nil
			})
		case 11:
			inputs = append(inputs, b)
		case 12:
			outputs = append(outputs, b)
		}
		return nil
	})
	if err != nil {
		return Contract{}, fmt.Errorf("onnx graph: %w", err)
	}
	var c Contract
	for _, side := range []struct {
		kind string
		vis  [][]byte
		dst  *[]Tensor
	}{{"input", inputs, &c.Inputs}, {"output", outputs, &c.Outputs}} {
		for _, vi := range side.vis {
			t, err := valueInfo(vi)
			if err != nil {
				return Contract{}, fmt.Errorf("onnx graph %s %q: %w", side.kind, t.Name, err)
			}
			if side.kind == "input" && inits[t.Name] {
				continue
			}
			*side.dst = append(*side.dst, t)
		}
	}
	if err := c.validate(); err != nil {
		return Contract{}, fmt.Errorf("onnx model: %w", err)
	}
	return c, nil
}

// valueInfo decodes a ValueInfoProto: name = 1, type = 2 (TypeProto,
// whose tensor_type = 1 holds elem_type = 1 and shape = 2).
func valueInfo(b []byte) (Tensor, error) {
	var t Tensor
	var typ []byte
	err := pbFields(b, func(num, wt int, _ uint64, s []byte) error {
		switch {
		case num == 1 && wt == wireBytes:
			t.Name = string(s)
		case num == 2 && wt == wireBytes:
			typ = s
		}
		return nil
	})
	if err != nil {
		return t, err
	}
	var tensor []byte
	if err := pbFields(typ, func(num, wt int, _ uint64, s []byte) error {
		if num == 1 && wt == wireBytes {
			tensor = s
		}
		return nil
	}); err != nil {
		return t, err
	}
	if tensor == nil {
		return t, errors.New("not a tensor (a sequence, map or optional value)")
	}
	var shape []byte
	elem := -1
	if err := pbFields(tensor, func(num, wt int, v uint64, s []byte) error {
		switch {
		case num == 1 && wt == wireVarint:
			elem = int(int32(v))
		case num == 2 && wt == wireBytes:
			shape = s
		}
		return nil
	}); err != nil {
		return t, err
	}
	if elem <= 0 || elem >= len(ElementTypes) || ElementTypes[elem] == "" {
		return t, fmt.Errorf("element type %d is not one Vigil runs", elem)
	}
	t.Type = ElementTypes[elem]
	if shape == nil {
		return t, errors.New("declares no shape")
	}
	t.Shape = []int64{}
	err = pbFields(shape, func(num, wt int, _ uint64, dim []byte) error {
		if num != 1 || wt != wireBytes {
			return nil
		}
		d := int64(-1) // a dim_param, or nothing: a dynamic axis
		err := pbFields(dim, func(num, wt int, v uint64, _ []byte) error {
			if num == 1 && wt == wireVarint {
				d = int64(v)
			}
			return nil
		})
		if d <= 0 {
			d = -1
		}
		t.Shape = append(t.Shape, d)
		return err
	})
	return t, err
}

// Protobuf wire types.
const (
	wireVarint = 0
	wireI64    = 1
	wireBytes  = 2
	wireI32    = 5
)

// pbFields calls fn for every field of the protobuf message b: its
// number, wire type, the value of a varint, or the bytes of a
// length-delimited field (a sub-slice of b).
func pbFields(b []byte, fn func(num, typ int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad protobuf: truncated field key")
		}
		b = b[n:]
		num, typ := int(key>>3), int(key&7)
		var v uint64
		var data []byte
		switch typ {
		case wireVarint:
			if v, n = binary.Uvarint(b); n <= 0 {
				return errors.New("bad protobuf: truncated varint")
			}
			b = b[n:]
		case wireI64, wireI32:
			size := 8
			if typ == wireI32 {
				size = 4
			}
			if len(b) < size {
				return errors.New("bad protobuf: truncated fixed field")
			}
			b = b[size:]
		case wireBytes:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errors.New("bad protobuf: truncated bytes field")
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return fmt.Errorf("bad protobuf: wire type %d of field %d", typ, num)
		}
		if err := fn(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}
