// Package models owns model files on disk. Today its sub-packages generate
// them: demo writes Vigil's three demo models deterministically, testmodels
// writes small models other packages' tests need, and onnxgraph is the graph
// builder both use.
//
// To come (see DESIGN.md, "Later"): manifests with SHA-256 and ed25519
// signatures, active / candidate / previous slots, atomic install and
// rollback.
package models
