// Package models owns model files on disk. It holds no code: its
// sub-packages generate the models Vigil runs in demos, benchmarks and
// tests, so that no binary model lives in the repository, and define how
// a model travels to a vehicle.
//
//   - onnxgraph builds small ONNX graphs in Go (Builder: inputs, outputs,
//     initializers, nodes, metadata) and serialises them deterministically:
//     the same calls give the same bytes.
//   - demo generates Vigil's three demo driving models (primary, shadow
//     and degraded) on one input/output contract, with weights from fixed
//     seeds and their metadata (name, version, role, declared input and
//     output ranges): Generate, GenerateBatched (a dynamic batch axis) and
//     WriteAll, which cmd/vigil-models, vigil-bench and the inference
//     tests use. It also makes three later versions of the primary for
//     over-the-air rollouts, on the same contract: a good one, one whose
//     outputs diverge and one too slow for the deadline (GenerateRollout,
//     WriteRollouts, and RolloutTolerance for comparing them).
//   - testmodels generates small models with a known defect or cost (slow
//     chains, one giant node, NaN and Inf producers, several inputs) for
//     other packages' tests.
//   - bundle is the signed model bundle: a manifest (name, version,
//     roles, contract, every file's SHA-256, minimum Vigil, execution
//     providers, expiry) signed by a model-signing key, in a directory or
//     a tar; Verify decides, reading only, whether a vehicle may install
//     one. It imports only the standard library (vigil-fleet's `model`
//     commands link it); docs/models.md describes the format.
//
// demo and testmodels build with onnxgraph; what they return (bytes, or
// files written by WriteAll) goes to inference.Load or straight to ONNX
// Runtime.
package models
