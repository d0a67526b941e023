// Package bundle is the format of a model bundle — the unit in which a
// model travels to a vehicle — and its verification. A bundle is a
// manifest (bundle.json) plus the model's files: the manifest names the
// model and its version, the roles it may fill, its input and output
// contract, every file's size and SHA-256, the oldest Vigil and the
// execution providers it needs, an optional trial tolerance and a
// validity window, and carries an ed25519 signature by a model-signing key
// (never a fleet command key). docs/models.md describes the format, the
// canonical encoding that is signed, and the refusals.
//
// The parts:
//
//   - manifest.go: Manifest and its fields, Parse (bundle.json in) and
//     Validate (each field on its own), CheckPath.
//   - contract.go: Contract and Tensor, ParseContract (JSON) and
//     Compatible; onnx.go: ContractFromONNX reads the contract an ONNX
//     file declares, decoding just enough protobuf to do so.
//   - canonical.go: Canonical (the signed bytes), Encode (bundle.json
//     out), Manifest.Hash (the bundle's identity), Sign.
//   - keys.go: model-signing key pairs and their files, in the layout of
//     the fleet's command key files but marked as model keys.
//   - verify.go: Policy (what a vehicle holds a bundle to) and Verify, the
//     pure decision: manifest, signature, validity, Vigil version,
//     providers, contract, anti-rollback floor, then every file
//     (VerifyFiles). It reads through an fs.FS and never writes.
//   - bundle.go and tarfs.go: the two layouts — a directory, and a tar
//     with bundle.json first (Pack writes it) served as an fs.FS straight
//     from the file — behind Open; HashFiles lists a directory's files
//     for a new manifest.
//   - semver.go: the semantic versions min_vigil is compared by.
//
// vigil-fleet's `model` commands make, sign, inspect and verify bundles
// with this package; the vehicle will call the same Verify before a
// bundle touches a slot. The package imports only the standard library
// (purity_test.go), so the fleet tool links it without ONNX Runtime,
// Badger or NVML.
package bundle
