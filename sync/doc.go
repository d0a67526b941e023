// Package sync will own the MQTT link on both ends: the edge uploader that
// drains storage to the broker with application-level acknowledgements, the
// signed command channel, and the cloud-side ingester used by vigil-fleet.
//
// # Built: the broker-independent core
//
// Three pure, tested sub-packages that the link is assembled from. None of
// them talks to a network or reads the clock on its own.
//
//   - sync/batch is the wire format. A batch carries the records of one
//     stream over one contiguous sequence range (holes left by eviction
//     fall between batches; the gap record that explains a hole travels
//     later, like any record), with a header naming vehicle, stream, the
//     uploader's boot, the range, the count, the compression (flate, which
//     falls back to none when it does not shrink the body) and a CRC-32C
//     over header and uncompressed body. CRC-32C, not SHA-256: it catches
//     corruption; forgery is the mutually authenticated link's job, and the
//     ingester checks the header's vehicle against the topic. Decode is
//     strict (magic, version, lengths, checksum, contiguity, count, kinds)
//     and bounds the inflated body (DefaultMaxBody, 1 MiB) before and while
//     inflating. Packer packs as many whole records as fit under
//     MaxPayload (128 KiB, AWS IoT Core's limit) from an outbox Read; a
//     record that fits in no batch is a *TooLargeError, which storage's
//     default MaxRecordBytes (64 KiB) keeps from happening. Ack is the
//     JSON acknowledgement: stored, duplicate or rejected; an ingester that
//     failed on its own side sends none, and the edge resends.
//   - sync/sink is the cloud side's idempotent store: one file per stored
//     range, <root>/<vehicle>/<stream>/<first>-<last>.batch, each a batch,
//     written by temp file, fsync, rename and directory fsync. Records are
//     de-duplicated on (vehicle, stream, seq): the edge's sequence numbers
//     continue across boots, so the boot is carried but is not part of the
//     key. A resent batch is a duplicate and writes nothing; an
//     overlapping one writes only its new ranges. Names are fixed by
//     content, so replicas writing the same range collide harmlessly, and
//     overlapping files left by replicas that share no state are merged on
//     read and on recovery. Report gives per vehicle and stream the
//     high-water mark, what is complete through, the gap records received,
//     the ranges that eviction gaps explain and the ranges missing without
//     explanation. Open rebuilds all of it from the tree.
//   - sync/command is the fleet-command envelope: canonical JSON of fixed
//     field order carried base64 in {"v","payload","sig"}, signed with
//     ed25519 over a domain prefix and the exact payload bytes. Verifier
//     checks trusted key ids, signature, command, target, clock skew,
//     lifetime, expiry and replay, each failure with its own sentinel
//     error; the nonce cache is an interface with an in-memory and a
//     storage-state implementation (replays refused after a restart,
//     expired nonces pruned, fail closed when full or failing). Response
//     answers with the correlation id; UnsafeWhileMoving and Allowed say
//     which commands wait for the vehicle to stop (policy, failover, clear).
//
// # Not built yet: the MQTT link (plan)
//
// Next, with paho (github.com/eclipse/paho.mqtt.golang, MQTT 3.1.1):
//
//   - Edge uploader (sync.Uploader, Open/Close(ctx)): connects with mutual
//     TLS, publishes retained status on vigil/v1/<vehicle>/status with a
//     last will of "offline"; per stream in priority order, Packer.Next
//     from the storage cursor, publishes on vigil/v1/<vehicle>/telemetry
//     (logs on .../logs) at QoS 1 with a bounded window of unacknowledged
//     batches, waits for Acks on vigil/v1/<vehicle>/ack, and calls
//     storage's Ack only through the highest contiguous stored or
//     duplicate batch; resends after a timeout and after reconnecting;
//     backs off on rejected and reports it. Woken by DurableChanged.
//   - Command channel: subscribes to vigil/v1/<vehicle>/cmd and
//     vigil/v1/fleet/cmd, runs Verifier.Verify with a StateNonces over the
//     vehicle's store, asks the agent whether the vehicle is moving
//     (Allowed), hands the command to the agent, and publishes the
//     Response on vigil/v1/<vehicle>/cmd/res.
//   - Ingester (sync/fleet, used by vigil-fleet ingest): subscribes with a
//     shared subscription ($share/vigil-ingest/vigil/v1/+/telemetry and
//     .../logs) so replicas split the load, takes the vehicle from the
//     topic, calls Sink.Ingest and publishes the ack (none on a local
//     error).
//   - vigil-fleet: keygen, sign and send commands, await responses by
//     correlation id, print Sink.Report.
//   - Tests against Mosquitto on a loopback port: broker restarts, lost
//     acks, duplicate delivery, two ingester replicas.
//
// Known limit to settle then: a vehicle whose store was wiped (moved aside
// as corrupt) restarts its sequence numbers at 1, and the sink would take
// its new records for duplicates; the store needs an incarnation id that
// batches carry and the sink keys on.
package sync
