// Package sync is the MQTT link between a vehicle and the cloud, on both
// ends. It holds no code: each sub-package owns one part, and this page
// says how they fit. Operators read docs/operations.md ("The cloud link")
// and docs/fleet.md (topics, commands, the ingester, the sink, and how the
// link is tested); the record layout is in docs/storage.md.
//
// # Parts
//
// Pure cores, with no network and no clock of their own:
//
//   - batch: the wire format. A batch holds records of one stream over one
//     contiguous sequence range, under the uploading store's incarnation
//     id, compressed (flate) and checked (CRC-32C); Packer packs an outbox's
//     records under MaxPayload (128 KiB), Decode is strict, Ack is the
//     ingester's answer (stored, duplicate or rejected).
//   - command: the signed fleet-command envelope (ed25519 over canonical
//     JSON), Verifier (key, signature, target, times, replay), the nonce
//     caches, Response, and which commands wait for the vehicle to stop.
//   - presence: the vehicles' heartbeats and the ingester replicas'
//     status, and Judge, which tells a vehicle online from one that only
//     looks so; Watch, its one piece of I/O, collects them for
//     vigil-fleet.
//
// The link, over paho (MQTT 3.1.1, mutual TLS):
//
//   - edge: the vehicle's Uploader. One connection, reconnected with
//     backoff; drains every outbox stream in windows of batches paced by
//     the acks, live records ahead of a backlog; carries the command
//     channel's subscriptions and publishes the vehicle's status and
//     heartbeat.
//   - ingest: the cloud's Ingester, a shared subscription that stores
//     each batch in the sink and publishes the sink's ack.
//   - sink: the cloud's idempotent store, segment files per vehicle,
//     store incarnation and stream; reports what is stored and missing.
//   - ckptlink: checkpoint upload: the vehicle's Shipper (chunks acked
//     one by one, the manifest last, resumable from upload.json, over
//     edge.Uploader.PublishBulk) and the cloud's Receiver (into a
//     blob.Store and blob.Catalog); its envelope and acks.
//   - cmdlink: the command channel: the vehicle's Receiver (verify on
//     arrival, queue the genuine, execute one at a time, answer) and the
//     operator's Sender; key files.
//   - linktls: a link's client TLS from PEM files.
//   - internal/mqttsub and internal/pahostore: what every paho client of
//     Vigil does after connecting, and the paho store that keeps nothing.
//   - mqtttest (with mqtttest/mosquitto): a real Mosquitto on a loopback
//     port for tests and vigil-bench, a test PKI, the fleet's ACL and a
//     proxy for faults the broker cannot stage.
//
// # How data flows
//
//	vehicle                       broker (vigil/v1/...)          cloud
//	outbox ─Read─▶ edge.Uploader ─▶ <vehicle>/telemetry, logs ─▶ ingest.Ingester ─▶ sink.Sink
//	outbox ◀─Ack── edge.Uploader ◀─ <vehicle>/ack ◀──────────── ingest.Ingester
//	               edge.Uploader ─▶ <vehicle>/status, heartbeat ─▶ presence.Watch
//	               edge.Uploader ◀─ fleet/ingest/<replica>/status ◀ ingest.Ingester
//	executor ◀── cmdlink.Receiver ◀─ <vehicle>/cmd, fleet/cmd ◀── cmdlink.Sender
//	             cmdlink.Receiver ─▶ <vehicle>/cmd/res ─────────▶ cmdlink.Sender
//	ckptlink.Shipper ─PublishBulk─▶ <vehicle>/checkpoints ─────▶ ckptlink.Receiver ─▶ blob.Store, Catalog
//	ckptlink.Shipper ◀──────────── <vehicle>/checkpoints/ack ◀─ ckptlink.Receiver
//
// The uploader reads each stream from its outbox cursor, packs batches
// and publishes them at QoS 1. The ingester decodes each, stores its new
// records in the sink and publishes the sink's ack; only on that ack does
// the uploader move the cursor, and storage drops what lies behind it.
// A batch or ack lost on the way is sent again (after the ack timeout, on
// reconnection, when an ingester replica comes online), and the sink
// de-duplicates on (vehicle, store, stream, seq): every durable record
// reaches the cloud exactly once. Commands come down signed; the receiver
// verifies each as it arrives, queues only the genuine ones, and answers
// with the envelope's correlation id: each command it executes or refuses
// from the queue, and refusals on arrival while its answer budget allows.
//
// # Who runs what
//
//   - vigild (agent's cloud.go and commands.go): edge.Uploader, with
//     cmdlink.Receiver's handler on its connection.
//   - vigil-fleet: ingest (Ingester into a Sink), report and compact
//     (Sink), cmd (cmdlink.Sender), vehicles (presence.Watch).
//   - vigil-bench sync: Uploader, Ingester and Sink against a bare paho
//     publisher, over an emulated vehicle uplink.
package sync
