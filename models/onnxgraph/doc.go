// Package onnxgraph builds small ONNX models in Go and serialises them
// deterministically.
//
// A Builder collects, in call order, the parts of one graph:
//
//   - graph inputs and outputs (AddInput, AddOutput): float32 tensors with a
//     fixed shape, or with dynamic axes marked Batch (dim_param "batch");
//   - initializers (AddInitializer): named float32 constants with a shape,
//     stored little-endian in TensorProto.raw_data;
//   - nodes (AddNode): an operator type, input and output tensor names, and
//     attributes built with Int, Ints and Float;
//   - model-level fields: producer name and version, doc string and
//     metadata_props (SetMetadata).
//
// Marshal checks the graph (every node input is defined before use, names are
// unique, initializer data matches its shape, every graph output is produced)
// and encodes it with proto.MarshalOptions{Deterministic: true}. The encoding
// depends only on the calls made, in their order: the same calls give the
// same bytes, so a generator that draws its weights from a seeded PCG source
// writes byte-identical files on every run.
//
// Models target IR version 8 and opset 13 of the default domain, which ONNX
// Runtime 1.24 loads.
//
// A minimal model, y = Relu(x):
//
//	b := onnxgraph.New("relu")
//	b.AddInput("x", 1, 4)
//	b.AddNode("Relu", []string{"x"}, []string{"y"})
//	b.AddOutput("y", 1, 4)
//	data, err := b.Marshal()
//
// The builder records the first mistake and reports it from Marshal, so a
// generator can chain calls and check one error at the end.
package onnxgraph
