package bundle

import (
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/testmodels"
)

// TestContractFromONNX reads the contracts of real generated models: the
// demo models (fixed and batched), a model with two inputs and two
// outputs, and one whose weights are also listed as a graph input.
func TestContractFromONNX(t *testing.T) {
	for _, role := range demo.Roles {
		b, err := demo.Generate(role)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ContractFromONNX(b)
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		if err := c.Compatible(demoContract); err != nil {
			t.Errorf("%s: %v", role, err)
		}
		b, _ = demo.GenerateBatched(role)
		c, err = ContractFromONNX(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.Inputs[0].Shape, []int64{-1, 3, 66, 200}) || !slices.Equal(c.Outputs[0].Shape, []int64{-1, 3}) {
			t.Errorf("batched %s: %+v", role, c)
		}
	}
	b, err := testmodels.TwoInputs()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ContractFromONNX(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Inputs) != 2 || len(c.Outputs) != 2 || c.Inputs[1].Name == c.Inputs[0].Name {
		t.Errorf("two inputs: %+v", c)
	}

	// A model written elsewhere: an initializer also listed as an input
	// (older exporters do), a symbolic and an unknown dimension, int64
	// and float16 tensors; and one whose input is a sequence.
	b, err = proto.Marshal(&onnx.ModelProto{IrVersion: 7, Graph: &onnx.GraphProto{
		Name:        "foreign",
		Input:       []*onnx.ValueInfoProto{valueInfoProto("ids", 7, "n", "", 4), valueInfoProto("w", 1, 4, 2)},
		Initializer: []*onnx.TensorProto{{Name: "w", Dims: []int64{4, 2}, DataType: 1, FloatData: make([]float32, 8)}},
		Output:      []*onnx.ValueInfoProto{valueInfoProto("y", 10, 1, 2)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c, err = ContractFromONNX(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Contract{Inputs: []Tensor{{"ids", "int64", []int64{-1, -1, 4}}}, Outputs: []Tensor{{"y", "float16", []int64{1, 2}}}}
	if err := c.Compatible(want); err != nil {
		t.Errorf("a foreign model: %v", err)
	}
	seq := &onnx.ValueInfoProto{Name: "s", Type: &onnx.TypeProto{Value: &onnx.TypeProto_SequenceType{SequenceType: &onnx.TypeProto_Sequence{}}}}
	b, _ = proto.Marshal(&onnx.ModelProto{Graph: &onnx.GraphProto{Input: []*onnx.ValueInfoProto{seq}, Output: []*onnx.ValueInfoProto{valueInfoProto("y", 1, 1)}}})
	if _, err := ContractFromONNX(b); err == nil || !strings.Contains(err.Error(), `input "s": not a tensor`) {
		t.Errorf("a sequence input: %v", err)
	}
	b, _ = proto.Marshal(&onnx.ModelProto{Graph: &onnx.GraphProto{Input: []*onnx.ValueInfoProto{valueInfoProto("x", 8, 1)}, Output: []*onnx.ValueInfoProto{valueInfoProto("y", 1, 1)}}})
	if _, err := ContractFromONNX(b); err == nil || !strings.Contains(err.Error(), "element type 8") {
		t.Errorf("a string input: %v", err)
	}
}

// valueInfoProto describes a tensor: dims are int (a dim_value), string
// (a dim_param) or "" (neither).
func valueInfoProto(name string, elem int32, dims ...any) *onnx.ValueInfoProto {
	shape := &onnx.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnx.TensorShapeProto_Dimension{}
		switch d := d.(type) {
		case int:
			dim.Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		case string:
			if d != "" {
				dim.Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: d}
			}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: elem, Shape: shape}}}}
}

func TestContractFromONNXRefusals(t *testing.T) {
	model, _ := demo.Generate(demo.RoleDegraded)
	for name, c := range map[string]struct {
		data    []byte
		mention string
	}{
		"empty":          {nil, "no graph"},
		"text":           {[]byte("this is not a model"), "bad protobuf"},
		"truncated":      {model[:len(model)/3], "bad protobuf"},
		"a JSON":         {[]byte(`{"inputs":[]}`), "bad protobuf"},
		"unknown wire 7": {[]byte{0x3f}, "wire type 7"},
	} {
		if _, err := ContractFromONNX(c.data); err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: %v, want mention of %q", name, err, c.mention)
		}
	}
}

func TestParseContract(t *testing.T) {
	c, err := ParseContract([]byte(`{"inputs":[{"name":"frame","type":"float32","shape":[1,3,66,200]}],
		"outputs":[{"name":"controls","type":"float32","shape":[1,3]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Compatible(demoContract); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{
		`{"inputs":[],"outputs":[]}`,
		`{"inputs":[{"name":"frame","type":"float32","shape":[1]}],"outputs":[{"name":"y","type":"f32","shape":[1]}]}`,
		`{"inputs":[{"name":"frame","type":"float32","shape":[1]}],"outputs":[{"name":"y","type":"float32","shape":[1]}]} {}`,
		`{"inputs":[{"name":"frame","dtype":"float32","shape":[1]}],"outputs":[{"name":"y","type":"float32","shape":[1]}]}`,
	} {
		if _, err := ParseContract([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	for name, other := range map[string]Contract{
		"output shape": {Inputs: demoContract.Inputs, Outputs: []Tensor{{"controls", "float32", []int64{1, 4}}}},
		"input type":   {Inputs: []Tensor{{"frame", "float16", []int64{1, 3, 66, 200}}}, Outputs: demoContract.Outputs},
		"input name":   {Inputs: []Tensor{{"image", "float32", []int64{1, 3, 66, 200}}}, Outputs: demoContract.Outputs},
		"two outputs":  {Inputs: demoContract.Inputs, Outputs: append(slices.Clone(demoContract.Outputs), Tensor{"z", "float32", []int64{1}})},
	} {
		if err := demoContract.Compatible(other); err == nil {
			t.Errorf("%s: compatible", name)
		}
	}
}
