// Package ckptlink ships checkpoints from the vehicle to the cloud over
// MQTT (issue 14; DESIGN.md "Checkpoints and restore"): both ends of the
// upload and what they say to each other. docs/fleet.md ("Checkpoint
// upload") describes the protocol.
//
//   - topics.go: the vehicle publishes on vigil/v1/<vehicle>/checkpoints
//     and reads its acks on vigil/v1/<vehicle>/checkpoints/ack (QoS 1).
//   - envelope.go: one message, a strict binary envelope (magic, version,
//     type chunk or manifest, vehicle, store, checkpoint id, index and
//     count, SHA-256, the bytes) within the 128 KiB payload limit; a
//     manifest over MaxPartBytes goes in parts.
//   - ack.go: the cloud's JSON answer: stored, complete, missing (with the
//     chunk indexes) or refused (with a reason).
//   - Shipper (shipper.go, upload.go, progress.go), the vehicle's end:
//     uploads the checkpoints of a directory oldest first, a window of
//     chunks at a time, each acknowledged once the cloud stored and
//     hash-checked it, the manifest last; resends on the ack timeout;
//     persists each upload's acknowledged chunks in <id>/upload.json so
//     that a restart of either end, or of the broker, sends only what is
//     missing. It publishes through a Link (edge.Uploader.PublishBulk:
//     behind telemetry, within the rate cap).
//   - Receiver (receiver.go, handle.go), the cloud's end: a shared
//     subscription to every vehicle's topic; stores chunks in a
//     blob.Store, and on the manifest checks every chunk is stored and
//     the whole checkpoint verifies (manifest.Verify) before
//     blob.Catalog.Complete.
//
// The package does not import sync/edge or storage (the fleet side links
// it without Badger): Subscription has edge.Subscription's fields.
package ckptlink
