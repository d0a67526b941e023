package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Contract is a model's interface as the ladder sees it: its inputs and
// outputs, in the model's order. Every model that fills a role must have
// the contract the vehicle runs in that role.
type Contract struct {
	Inputs  []Tensor `json:"inputs"`
	Outputs []Tensor `json:"outputs"`
}

// Tensor is one input or output of a model.
type Tensor struct {
	Name string `json:"name"`
	// Type is the element type, named as inference names them:
	// "float32", "float16", "int64", ... (ElementTypes).
	Type string `json:"type"`
	// Shape is the declared shape; -1 marks a dynamic axis (such as a
	// batch) and [] a scalar.
	Shape []int64 `json:"shape"`
}

// ElementTypes are the element type names a Tensor may have, indexed by
// their number in ONNX's TensorProto.DataType ("" where none).
var ElementTypes = [...]string{
	1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
	7: "int64", 9: "bool", 10: "float16", 11: "float64", 12: "uint32",
	13: "uint64", 16: "bfloat16",
}

func knownType(s string) bool { return s != "" && slices.Contains(ElementTypes[:], s) }

func (c *Contract) validate() error {
	if len(c.Inputs) == 0 || len(c.Outputs) == 0 {
		return malformed("contract", "needs at least one input and one output")
	}
	for _, side := range []struct {
		kind string
		ts   []Tensor
	}{{"inputs", c.Inputs}, {"outputs", c.Outputs}} {
		for i, t := range side.ts {
			field := fmt.Sprintf("contract.%s[%d]", side.kind, i)
			if t.Name == "" {
				return malformed(field+".name", "empty")
			}
			if err := checkText(field+".name", t.Name); err != nil {
				return err
			}
			if slices.ContainsFunc(side.ts[:i], func(o Tensor) bool { return o.Name == t.Name }) {
				return malformed(field+".name", fmt.Sprintf("%q twice", t.Name))
			}
			if !knownType(t.Type) {
				return malformed(field+".type", fmt.Sprintf("%q: want one of float32, float16, bfloat16, float64, int8..int64, uint8..uint64, bool", t.Type))
			}
			if t.Shape == nil {
				return malformed(field+".shape", "missing (a scalar is [])")
			}
			for _, d := range t.Shape {
				if d < -1 || d == 0 {
					return malformed(field+".shape", fmt.Sprintf("%v: dimensions are >= 1, or -1 for a dynamic axis", t.Shape))
				}
			}
		}
	}
	return nil
}

// Compatible reports whether a model with contract c can fill a role whose
// contract is want: the same inputs and outputs in the same order, each
// with the same name, element type and shape (a dynamic axis matches only
// a dynamic axis). The error wraps ErrIncompatibleContract and names the
// first difference.
func (c Contract) Compatible(want Contract) error {
	if d := contractDiff(c, want); d != "" {
		return fmt.Errorf("%w: %s", ErrIncompatibleContract, d)
	}
	return nil
}

// contractDiff describes the first difference between got and want, or
// returns "".
func contractDiff(got, want Contract) string {
	if d := tensorsDiff("input", got.Inputs, want.Inputs); d != "" {
		return d
	}
	return tensorsDiff("output", got.Outputs, want.Outputs)
}

func tensorsDiff(kind string, got, want []Tensor) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d %ss, the vehicle runs %d", len(got), kind, len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Type != w.Type || !slices.Equal(g.Shape, w.Shape) {
			return fmt.Sprintf("%s %d is %s %s %v, the vehicle runs %s %s %v", kind, i, g.Name, g.Type, g.Shape, w.Name, w.Type, w.Shape)
		}
	}
	return ""
}

// ParseContract reads a contract from JSON: {"inputs": [{"name": ...,
// "type": ..., "shape": [...]}], "outputs": [...]}, the form it has in
// the manifest. Unknown fields are refused.
func ParseContract(data []byte) (Contract, error) {
	var c Contract
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Contract{}, fmt.Errorf("%w: contract: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Contract{}, fmt.Errorf("%w: contract: data after the contract object", ErrMalformed)
	}
	if err := c.validate(); err != nil {
		return Contract{}, err
	}
	return c, nil
}
