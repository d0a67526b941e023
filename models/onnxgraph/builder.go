package onnxgraph

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// IRVersion and Opset are the ONNX IR version and default-domain opset that
// every model built here declares.
const (
	IRVersion = 8
	Opset     = 13
)

// Batch, as a dimension of a graph input or output, is a dynamic axis: its
// dim_param is BatchParam, so that ONNX Runtime takes any size there and
// ties together the axes that share the name (a batch of frames in, as many
// answers out).
const (
	Batch      int64 = -1
	BatchParam       = "batch"
)

// Attribute is one node attribute; build it with Int, Ints or Float.
type Attribute struct {
	proto *onnx.AttributeProto
}

// Int is an integer attribute, e.g. Int("axis", 1).
func Int(name string, v int64) Attribute {
	return Attribute{&onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INT, I: v}}
}

// Ints is an integer-list attribute, e.g. Ints("strides", 2, 2).
func Ints(name string, v ...int64) Attribute {
	return Attribute{&onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INTS, Ints: append([]int64(nil), v...)}}
}

// Float is a float attribute, e.g. Float("alpha", 1).
func Float(name string, v float32) Attribute {
	return Attribute{&onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_FLOAT, F: v}}
}

// Builder accumulates one ONNX graph and the model fields around it. The zero
// value is not usable; call New. A Builder is not safe for concurrent use.
type Builder struct {
	graphName       string
	producerName    string
	producerVersion string
	docString       string
	metadata        []*onnx.StringStringEntryProto

	inputs       []*onnx.ValueInfoProto
	outputs      []*onnx.ValueInfoProto
	initializers []*onnx.TensorProto
	nodes        []*onnx.NodeProto

	err error // first mistake recorded by an Add call
}

// New returns a Builder for a graph with the given name.
func New(graphName string) *Builder {
	return &Builder{graphName: graphName}
}

// SetProducer sets the model's producer_name and producer_version.
func (b *Builder) SetProducer(name, version string) {
	b.producerName, b.producerVersion = name, version
}

// SetDocString sets the model's doc_string.
func (b *Builder) SetDocString(doc string) {
	b.docString = doc
}

// SetMetadata sets a metadata_props entry. Entries keep the order in which
// their keys were first set; setting a key again replaces its value.
func (b *Builder) SetMetadata(key, value string) {
	for _, e := range b.metadata {
		if e.Key == key {
			e.Value = value
			return
		}
	}
	b.metadata = append(b.metadata, &onnx.StringStringEntryProto{Key: key, Value: value})
}

// AddInput declares a float32 graph input with a fixed shape, where only
// Batch marks a dynamic axis.
func (b *Builder) AddInput(name string, shape ...int64) {
	b.inputs = append(b.inputs, b.valueInfo("input", name, shape))
}

// AddOutput declares a float32 graph output with a fixed shape, where only
// Batch marks a dynamic axis.
func (b *Builder) AddOutput(name string, shape ...int64) {
	b.outputs = append(b.outputs, b.valueInfo("output", name, shape))
}

// AddInitializer adds a named float32 constant. data holds the elements in
// row-major order and is copied; its length must equal the product of shape.
func (b *Builder) AddInitializer(name string, shape []int64, data []float32) {
	n, ok := numElements(shape)
	switch {
	case name == "":
		b.fail(errors.New("initializer with an empty name"))
	case !ok:
		b.fail(fmt.Errorf("initializer %q: invalid shape %v", name, shape))
	case int64(len(data)) != n:
		b.fail(fmt.Errorf("initializer %q: shape %v needs %d values, got %d", name, shape, n, len(data)))
	}
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	b.initializers = append(b.initializers, &onnx.TensorProto{
		Name:     name,
		Dims:     append([]int64(nil), shape...),
		DataType: int32(onnx.TensorProto_FLOAT),
		RawData:  raw,
	})
}

// AddNode appends a node of the default domain. Nodes must be added in
// topological order: each input must be a graph input, an initializer or an
// output of an earlier node. An empty input name marks an omitted optional
// input. The node is named after its operator and position, e.g. "Conv_3".
func (b *Builder) AddNode(opType string, inputs, outputs []string, attrs ...Attribute) {
	if opType == "" {
		b.fail(errors.New("node with an empty op type"))
	}
	if len(outputs) == 0 {
		b.fail(fmt.Errorf("node %s has no outputs", opType))
	}
	node := &onnx.NodeProto{
		Name:   fmt.Sprintf("%s_%d", opType, len(b.nodes)),
		OpType: opType,
		Input:  append([]string(nil), inputs...),
		Output: append([]string(nil), outputs...),
	}
	for _, a := range attrs {
		node.Attribute = append(node.Attribute, proto.Clone(a.proto).(*onnx.AttributeProto))
	}
	b.nodes = append(b.nodes, node)
}

// Model checks the graph and returns it as a ModelProto. The result shares
// no memory with the Builder.
func (b *Builder) Model() (*onnx.ModelProto, error) {
	if b.err != nil {
		return nil, b.err
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	g := &onnx.GraphProto{
		Name:        b.graphName,
		Node:        b.nodes,
		Initializer: b.initializers,
		Input:       b.inputs,
		Output:      b.outputs,
	}
	m := &onnx.ModelProto{
		IrVersion:       IRVersion,
		OpsetImport:     []*onnx.OperatorSetIdProto{{Domain: "", Version: Opset}},
		ProducerName:    b.producerName,
		ProducerVersion: b.producerVersion,
		DocString:       b.docString,
		Graph:           g,
		MetadataProps:   b.metadata,
	}
	return proto.Clone(m).(*onnx.ModelProto), nil
}

// Marshal checks the graph and encodes the model deterministically: the same
// sequence of Builder calls always yields the same bytes.
func (b *Builder) Marshal() ([]byte, error) {
	m, err := b.Model()
	if err != nil {
		return nil, err
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal model %q: %w", b.graphName, err)
	}
	return data, nil
}

func (b *Builder) fail(err error) {
	if b.err == nil {
		b.err = fmt.Errorf("onnxgraph %q: %w", b.graphName, err)
	}
}

func (b *Builder) valueInfo(kind, name string, shape []int64) *onnx.ValueInfoProto {
	if name == "" {
		b.fail(fmt.Errorf("graph %s with an empty name", kind))
	}
	fixed := make([]int64, len(shape))
	dims := make([]*onnx.TensorShapeProto_Dimension, len(shape))
	for i, d := range shape {
		fixed[i] = d
		dims[i] = &onnx.TensorShapeProto_Dimension{
			Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d},
		}
		if d == Batch {
			fixed[i] = 1
			dims[i].Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: BatchParam}
		}
	}
	if _, ok := numElements(fixed); !ok {
		b.fail(fmt.Errorf("graph %s %q: invalid shape %v", kind, name, shape))
	}
	return &onnx.ValueInfoProto{
		Name: name,
		Type: &onnx.TypeProto{
			Value: &onnx.TypeProto_TensorType{
				TensorType: &onnx.TypeProto_Tensor{
					ElemType: int32(onnx.TensorProto_FLOAT),
					Shape:    &onnx.TensorShapeProto{Dim: dims},
				},
			},
		},
	}
}

// check verifies what the Add calls could not see one at a time: unique
// tensor names, inputs defined before use and every graph output produced.
func (b *Builder) check() error {
	defined := make(map[string]bool)
	define := func(kind, name string) error {
		if defined[name] {
			return fmt.Errorf("onnxgraph %q: %s %q: name already defined", b.graphName, kind, name)
		}
		defined[name] = true
		return nil
	}
	for _, in := range b.inputs {
		if err := define("graph input", in.Name); err != nil {
			return err
		}
	}
	for _, t := range b.initializers {
		if err := define("initializer", t.Name); err != nil {
			return err
		}
	}
	for _, n := range b.nodes {
		for _, in := range n.Input {
			if in != "" && !defined[in] {
				return fmt.Errorf("onnxgraph %q: node %s: input %q is not defined by an earlier node, input or initializer", b.graphName, n.Name, in)
			}
		}
		for _, out := range n.Output {
			if out == "" {
				continue // omitted optional output
			}
			if err := define("output of node "+n.Name, out); err != nil {
				return err
			}
		}
	}
	seen := make(map[string]bool)
	for _, out := range b.outputs {
		if !defined[out.Name] {
			return fmt.Errorf("onnxgraph %q: graph output %q is not produced by any node", b.graphName, out.Name)
		}
		if seen[out.Name] {
			return fmt.Errorf("onnxgraph %q: graph output %q declared twice", b.graphName, out.Name)
		}
		seen[out.Name] = true
	}
	return nil
}

// numElements returns the product of shape and whether every dimension is
// positive.
func numElements(shape []int64) (int64, bool) {
	n := int64(1)
	for _, d := range shape {
		if d <= 0 || n > math.MaxInt64/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}
