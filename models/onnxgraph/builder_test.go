package onnxgraph

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// affine builds y = Relu(x·Wᵀ + b) with a few of every kind of part.
func affine() *Builder {
	b := New("affine")
	b.SetProducer("test", "0.1")
	b.SetDocString("doc")
	b.SetMetadata("k1", "v1")
	b.SetMetadata("k2", "v2")
	b.AddInput("x", 1, 2)
	b.AddInitializer("w", []int64{3, 2}, []float32{1, 2, 3, 4, 5, -0.5})
	b.AddInitializer("b", []int64{3}, []float32{0, 1, -1})
	b.AddNode("Gemm", []string{"x", "w", "b"}, []string{"z"}, Int("transB", 1), Float("alpha", 1))
	b.AddNode("Relu", []string{"z"}, []string{"y"})
	b.AddOutput("y", 1, 3)
	return b
}

func TestMarshalRoundTrip(t *testing.T) {
	data, err := affine().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m onnx.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.IrVersion != 8 || len(m.OpsetImport) != 1 || m.OpsetImport[0].Domain != "" || m.OpsetImport[0].Version != 13 {
		t.Errorf("IR %d opsets %v, want IR 8 and default-domain opset 13", m.IrVersion, m.OpsetImport)
	}
	if m.ProducerName != "test" || m.ProducerVersion != "0.1" || m.DocString != "doc" {
		t.Errorf("producer %q %q doc %q", m.ProducerName, m.ProducerVersion, m.DocString)
	}
	if len(m.MetadataProps) != 2 || m.MetadataProps[0].Key != "k1" || m.MetadataProps[1].Value != "v2" {
		t.Errorf("metadata %v", m.MetadataProps)
	}
	g := m.Graph
	if g.Name != "affine" || len(g.Node) != 2 || len(g.Initializer) != 2 {
		t.Fatalf("graph %q: %d nodes, %d initializers", g.Name, len(g.Node), len(g.Initializer))
	}
	gemm := g.Node[0]
	if gemm.Name != "Gemm_0" || gemm.OpType != "Gemm" || strings.Join(gemm.Input, ",") != "x,w,b" || gemm.Output[0] != "z" {
		t.Errorf("node 0 = %v", gemm)
	}
	if a := gemm.Attribute; len(a) != 2 || a[0].Name != "transB" || a[0].Type != onnx.AttributeProto_INT || a[0].I != 1 ||
		a[1].Type != onnx.AttributeProto_FLOAT || a[1].F != 1 {
		t.Errorf("Gemm attributes = %v", a)
	}
	w := g.Initializer[0]
	if w.Name != "w" || w.DataType != int32(onnx.TensorProto_FLOAT) || len(w.Dims) != 2 || w.Dims[0] != 3 || w.Dims[1] != 2 {
		t.Errorf("initializer w = %v", w)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(w.RawData[20:])); got != -0.5 {
		t.Errorf("w[5] = %g, want -0.5 (little-endian raw_data)", got)
	}
	dims := g.Output[0].Type.GetTensorType().Shape.Dim
	if len(dims) != 2 || dims[0].GetDimValue() != 1 || dims[1].GetDimValue() != 3 ||
		g.Output[0].Type.GetTensorType().ElemType != int32(onnx.TensorProto_FLOAT) {
		t.Errorf("output type = %v", g.Output[0].Type)
	}
}

func TestMarshalDeterministic(t *testing.T) {
	first, err := affine().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := affine().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("two builds of the same graph marshal differently")
		}
	}
	b := affine()
	b.SetMetadata("k1", "other") // replaces in place, keeps order
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.MetadataProps) != 2 || m.MetadataProps[0].Key != "k1" || m.MetadataProps[0].Value != "other" {
		t.Errorf("metadata after replacing k1 = %v", m.MetadataProps)
	}
}

func TestModelIsACopy(t *testing.T) {
	b := affine()
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	m.Graph.Node[0].OpType = "Changed"
	m.MetadataProps[0].Value = "changed"
	again, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	if again.Graph.Node[0].OpType != "Gemm" || again.MetadataProps[0].Value != "v1" {
		t.Error("changing a returned model changed the builder")
	}
}

func TestIntsAttribute(t *testing.T) {
	v := []int64{2, 2}
	a := Ints("strides", v...)
	v[0] = 9
	if a.proto.Type != onnx.AttributeProto_INTS || a.proto.Ints[0] != 2 || len(a.proto.Ints) != 2 {
		t.Errorf("Ints = %v", a.proto)
	}
}

func TestMarshalErrors(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *Builder)
		want  string
	}{
		{"initializer data length", func(b *Builder) {
			b.AddInitializer("w", []int64{2, 2}, []float32{1, 2, 3})
		}, `initializer "w": shape [2 2] needs 4 values, got 3`},
		{"initializer bad shape", func(b *Builder) {
			b.AddInitializer("w", []int64{2, 0}, nil)
		}, `initializer "w": invalid shape`},
		{"input bad shape", func(b *Builder) {
			b.AddInput("x", 1, -2) // only Batch (-1) is dynamic
		}, `graph input "x": invalid shape`},
		{"undefined node input", func(b *Builder) {
			b.AddInput("x", 1)
			b.AddNode("Add", []string{"x", "missing"}, []string{"y"})
			b.AddOutput("y", 1)
		}, `node Add_0: input "missing" is not defined`},
		{"use before definition", func(b *Builder) {
			b.AddInput("x", 1)
			b.AddNode("Relu", []string{"z"}, []string{"y"})
			b.AddNode("Relu", []string{"x"}, []string{"z"})
			b.AddOutput("y", 1)
		}, `node Relu_0: input "z" is not defined`},
		{"duplicate name", func(b *Builder) {
			b.AddInput("x", 1)
			b.AddInitializer("x", []int64{1}, []float32{0})
		}, `initializer "x": name already defined`},
		{"output written twice", func(b *Builder) {
			b.AddInput("x", 1)
			b.AddNode("Relu", []string{"x"}, []string{"y"})
			b.AddNode("Neg", []string{"x"}, []string{"y"})
			b.AddOutput("y", 1)
		}, `output of node Neg_1 "y": name already defined`},
		{"graph output not produced", func(b *Builder) {
			b.AddInput("x", 1)
			b.AddOutput("y", 1)
		}, `graph output "y" is not produced`},
		{"node without outputs", func(b *Builder) {
			b.AddInput("x", 1)
			b.AddNode("Relu", []string{"x"}, nil)
		}, "node Relu has no outputs"},
	}
	for _, c := range cases {
		b := New("bad")
		c.build(b)
		_, err := b.Marshal()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Marshal error = %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestOptionalInputsAndOutputs(t *testing.T) {
	b := New("split")
	b.AddInput("x", 1, 4)
	b.AddNode("Split", []string{"x", ""}, []string{"a", "", "c"}, Int("axis", 1))
	b.AddOutput("a", 1, 1)
	if _, err := b.Marshal(); err != nil {
		t.Fatalf("empty names for omitted optional inputs/outputs: %v", err)
	}
}

// TestBatchAxis: Batch marks a dynamic axis named by BatchParam; other
// non-positive dimensions are still mistakes.
func TestBatchAxis(t *testing.T) {
	b := New("batched")
	b.AddInput("x", Batch, 2)
	b.AddNode("Relu", []string{"x"}, []string{"y"})
	b.AddOutput("y", Batch, 2)
	m, err := b.Model()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range append(m.Graph.Input, m.Graph.Output...) {
		dims := v.Type.GetTensorType().Shape.Dim
		if len(dims) != 2 || dims[0].GetDimParam() != BatchParam || dims[1].GetDimValue() != 2 {
			t.Errorf("%s: dims %v", v.Name, dims)
		}
	}
	bad := New("bad")
	bad.AddInput("x", -2, 2)
	if _, err := bad.Marshal(); err == nil || !strings.Contains(err.Error(), "invalid shape") {
		t.Errorf("dimension -2: %v", err)
	}
}
