// Package testmodels generates small ONNX models for other packages' tests:
// models with a known defect or a known cost, built deterministically with
// onnxgraph so no binary fixtures live in the repository.
//
//   - Slow: a long chain of small nodes, for runs that take a while and can
//     be stopped between nodes with RunOptions.Terminate.
//   - Giant: one big node, for runs that cannot be stopped mid-node.
//   - Sqrt and Reciprocal: produce NaN and Inf on chosen inputs, for output
//     validation.
//   - TwoInputs: several named inputs and outputs.
//
// Every function returns the serialised model; pass it to
// NewAdvancedSessionWithONNXData or write it to a file in t.TempDir().
package testmodels
