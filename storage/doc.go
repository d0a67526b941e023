// Package storage will own Vigil's BadgerDB telemetry buffer: per-stream
// records with monotonic sequence numbers, group commit, the outbox the sync
// package drains, quota and eviction with recorded gaps, and small state.
//
// Not built yet; see the storage issue.
package storage
