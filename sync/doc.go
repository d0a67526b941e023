// Package sync owns the MQTT link on both ends: the edge uploader that
// drains storage to the broker with application-level acknowledgements,
// the cloud-side ingester used by vigil-fleet, and the signed command
// channel. vigild runs the uploader and the command channel (agent's
// cloud.go and commands.go); vigil-fleet the ingester and the sender.
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
//     uploading store's incarnation id (storage's Store.StoreID, non-zero;
//     format version 2, version 1 had none and is refused), the uploader's
//     boot, the range, the count, the compression (flate, which falls back
//     to none when it does not shrink the body; Decode reads any flate
//     level or encoder) and a CRC-32C over header and uncompressed body.
//     Encode and Packer compress with klauspost/compress's deflate encoder
//     at level 5: 1 to 4% fewer bytes than the standard library's level 2
//     on the daemon's records for 11 to 21% less CPU (BenchmarkLevels);
//     compressors and decompressors are pooled, not allocated per batch.
//     CRC-32C, not SHA-256: it catches corruption; forgery is the mutually
//     authenticated link's job, and the ingester checks the header's
//     vehicle against the topic. Decode is strict (magic, version, store
//     id, lengths, checksum, contiguity, count, kinds) and bounds the
//     inflated body (DefaultMaxBody, 1 MiB) before and while inflating.
//     Packer packs as many whole records as fit under MaxPayload (128 KiB,
//     AWS IoT Core's limit) from an outbox Read, under its Store (the
//     outbox's StoreID; a Packer without one refuses to pack), in one pass
//     in the common case: it compresses in flushed chunks sized by the
//     ratio so far and stops before the limit, rather than compressing the
//     whole body and again a part of it; a record that fits in no batch is
//     a *TooLargeError, which storage's default MaxRecordBytes (64 KiB)
//     keeps from happening. Ack is the JSON acknowledgement (version 2):
//     stored, duplicate or rejected, with the batch's store id, so that the
//     edge can ignore an ack meant for an earlier incarnation of its store;
//     an ingester that failed on its own side sends none, and the edge
//     resends.
//   - sync/sink is the cloud side's idempotent store: per vehicle, store
//     incarnation and stream, segment files
//     <root>/<vehicle>/<store>/<stream>/<started>-<writer>-<n>.seg (store:
//     the incarnation id in 16 lowercase hex digits) to which each batch
//     is appended as one frame (length, sequence range, flags, CRC-32C)
//     and synced before the ack; a segment is rolled after an hour or at
//     64 MiB, so one vehicle's day at the demo's rates is 96 files
//     (TestFleetDayFiles), not a file per batch. Each Sink writes segments
//     of its own (a writer id drawn by Open) and never appends to another's
//     or, after a restart, to its own earlier ones; a crash leaves at most
//     part of an unacknowledged frame at a segment's end, which readers
//     skip, and a failed write is truncated away. A batch whose records
//     are all new is framed as received, once Decode has checked it; only
//     the new sub-ranges of an overlapping batch are re-encoded. Records
//     are de-duplicated on (vehicle, store, stream, seq): the edge's
//     sequence numbers continue across boots, so the boot is carried but
//     is not part of the key; they restart at 1 with a fresh store, which
//     has a new id, so the store is. A resent batch is a duplicate and
//     writes nothing; an overlapping one writes only its new ranges.
//     Ranges stored twice by replicas that share no state are merged on
//     read and on recovery. Compact merges the one-file-per-batch layout
//     of earlier versions (<first>-<last>.batch, still read) into
//     segments: new segment to a temporary name, sync, rename, directory
//     sync, then the old files removed, so a crash mid-way loses and
//     duplicates nothing (vigil-fleet compact). Report gives per vehicle,
//     store incarnation and stream (sorted by store id, numerically) the
//     high-water mark, what is complete through, the files, the gap records
//     received, the ranges that eviction gaps explain and the ranges
//     missing without explanation. ReadStore reads one incarnation's
//     stream; ReadStream reads a stream only one incarnation has sent; Scan
//     gives every record as stored, duplicates included, for checks of the
//     sink itself. Open rebuilds all of it from the tree (every frame's
//     header and checksum; only batches with gap records are inflated).
//   - sync/command is the fleet-command envelope: canonical JSON of fixed
//     field order carried base64 in {"v","payload","sig"}, signed with
//     ed25519 over a domain prefix and the exact payload bytes. Verifier
//     checks trusted key ids, signature, command, target, clock skew,
//     lifetime, expiry and replay, each failure with its own sentinel
//     error (Check does all of it and spends nothing, Spend spends the
//     nonce once; Verify is both); the nonce cache is an interface with an in-memory and a
//     storage-state implementation (replays refused after a restart,
//     expired nonces pruned, fail closed when full or failing). Response
//     answers with the correlation id; UnsafeWhileMoving and Allowed say
//     which commands wait for the vehicle to stop (policy, failover, clear).
//
// # Built: the MQTT link (paho, MQTT 3.1.1, mutual TLS)
//
//   - sync/edge is the uploader (New(cfg, outbox, log), Start, Close(ctx),
//     State, Stats, Publish, SyncNow). It keeps a persistent session
//     (CleanSession false, fixed client id), reconnects in its own loop
//     with capped exponential backoff and jitter (paho's auto-reconnect is
//     off), with a fresh paho client for each attempt (paho never frees
//     the message ids of publications a lost connection cut off in a
//     persistent session). Each connection subscribes, in one
//     SUBSCRIBE, at QoS 1 to vigil/v1/<vehicle>/ack, at QoS 0 to the
//     ingester replicas' status (sync/presence) and to
//     Config.Subscriptions (topic and
//     handler, for the command channel; their routes are installed before
//     connecting, since the session may deliver queued messages before the
//     subscriptions are renewed; a refused subscription, SUBACK 0x80,
//     drops the connection), then publishes a retained "online" on
//     vigil/v1/<vehicle>/status (the last will is a retained "offline"),
//     and a retained heartbeat on vigil/v1/<vehicle>/heartbeat, again
//     every HeartbeatInterval (10 s) while connected (its own goroutine).
//     Handlers run on paho's goroutines, one per message, and must not
//     block. Publish(topic, payload, retained, timeout) publishes at QoS 1
//     over the link and waits for the PUBACK; ErrOffline when the link is
//     down or is lost before the PUBACK. SyncNow resends what is in flight
//     at once and cuts a reconnect wait short. One drain goroutine owns the
//     per-stream state: each stream is drained from its cursor with
//     batch.Packer (reading at most 8 MaxPayloads per batch) into a window
//     of at most Window batches (16) published at QoS 1 without waiting
//     for PUBACK, the logs stream on vigil/v1/<vehicle>/logs, every other
//     on vigil/v1/<vehicle>/telemetry. The backlogs share a budget of
//     bytes in flight: 1.5 times the bandwidth-delay product the
//     connection's acks show (lowest ack round trip, highest recent
//     delivery rate), at least 2 MaxPayloads (pace.go). When the link
//     comes up with a backlog, a live lane (LiveWindow batches of the
//     window, a quarter by default, outside the budget) sends
//     the records appended since ahead of it, live lanes before backlogs;
//     the backlog lane packs only below the first live batch and adopts it
//     when it gets there, so the outbox cursor still moves only through
//     the prefix that the ingester acknowledged (stored or duplicate; an
//     ack counts for each batch in flight whose range it covers).
//     Acknowledged live ranges are remembered until then and not sent
//     again (after a restart they are, and the sink answers duplicate).
//     Acks of another store incarnation are ignored; rejections are counted
//     and reported, never acknowledged, and a rejected batch waits twice
//     as long before each resend (up to RejectBackoffMax, 10 minutes).
//     Unacknowledged batches go again after the ack timeout, after every
//     reconnect, when an ingester replica comes online (its status
//     published while connected; a retained one is old news) and on
//     SyncNow. The ack timeout follows the link (rto.go, after RFC 6298):
//     the smoothed ack round trip of batches sent once plus four times
//     its variation, between AckTimeoutMin (500 ms) and AckTimeout (the
//     cap, 10 s), 1 s before the first sample, doubled once per round of
//     expiries while nothing is acknowledged; any ack, a new connection,
//     an ingester coming online and SyncNow end the backoff.
//     MaxBytesPerSecond caps the published payload bytes (a token bucket
//     of one MaxPayload; Publish's bytes are counted, never held). The
//     loop wakes on acks, on DurableChanged, on (re)connection, on SyncNow
//     and on the resend and bandwidth timers. A record that fits in no
//     batch stalls its stream with an error rather than being skipped
//     (storage's MaxRecordBytes keeps it from happening). Paho is given a
//     store that keeps nothing: its stores are no outbox, and paho 1.5.1's
//     resume after a reconnect races with its own writer on stored
//     publishes (race detector). Config.TLS takes the vehicle's client
//     certificate (ssl:// broker URL).
//
//   - sync/ingest is the cloud side (New(cfg, sink, log), Start,
//     Close(ctx), Stats): shared subscriptions
//     $share/<group>/vigil/v1/+/telemetry and $share/<group>/vigil/v1/+/logs
//     at QoS 1 with manual MQTT acks, paho's auto-reconnect (at once, then
//     every ReconnectMax, 1 s) and re-subscription in OnConnect (a
//     refused subscription drops the connection), after which the
//     replica publishes a retained "online" on
//     vigil/v1/fleet/ingest/<Replica>/status ("offline" is its last will
//     and what Close publishes): vehicles send again what they sent while
//     no ingester was subscribed. A batch whose stream does not belong
//     on the topic it came on (logs on telemetry, any other stream on
//     logs) is rejected with the reason and not stored
//     (Stats.WrongTopic); every other goes to Sink.Ingest under the
//     vehicle named by the topic; the returned ack (stored, duplicate or
//     rejected) is published on vigil/v1/<vehicle>/ack at QoS 1 and only
//     then is the message acknowledged to the broker. On the sink's own
//     failure no ack is published and the edge resends; the MQTT-level
//     ack is still given, since 3.1.1 redelivers only on reconnect and
//     withholding it would only hold an in-flight slot. Sessions are
//     clean by default (Config.PersistentSession to change): a dead
//     replica's persistent session would keep receiving its share of the
//     messages. Replicas may each open a sink.Sink over one directory.
//
//   - sync/presence is who is on the link: the topics and payload of the
//     vehicles' heartbeats and the replicas' status, Judge (pure: a
//     vehicle is online when its last heartbeat is at most StaleIntervals,
//     3, of its intervals old, offline when its status says so and no
//     heartbeat came after, stale otherwise, whatever its retained status
//     says, since a broker restored from a snapshot brings back the
//     "online" of a vehicle that died after it), and Watch, which
//     collects statuses and heartbeats for vigil-fleet vehicles and cmd.
//
//   - sync/mqtttest starts a real Mosquitto (2.0) on a free loopback port
//     for tests: Start, Stop (SIGKILL), Restart on the same port
//     (Options.Persistence and Save, SIGUSR1: a broker that restarts from
//     its last snapshot), Addr, URL, Log, and test clients (Dial,
//     Client, Subscribe, Publish). NewPKI generates an ECDSA P-256 CA,
//     a server certificate for 127.0.0.1 and localhost and client
//     certificates by common name, as files in the test's directory,
//     with ClientTLS and LoadClientTLS for clients' configurations;
//     Options.TLS starts the broker with a TLS listener that requires a
//     client certificate and takes its common name as the user name,
//     Options.ACL with an ACL file, FleetACL being the link's (a vehicle
//     writes only its own telemetry, logs, status, heartbeat and cmd/res
//     and reads only its own ack and cmd, the fleet's broadcast and the
//     ingester replicas' status; "ingest" reads telemetry and logs and
//     writes acks and its replicas' status; "fleet" writes commands and
//     reads responses, statuses and heartbeats). Mosquitto 2.0.11 grants
//     every subscription and filters on delivery, and acknowledges then
//     drops a forbidden publication. Proxy is a TCP proxy for faults the
//     broker cannot stage: Sever (connections reset, no DISCONNECT), Kill
//     (and no reconnection), Blackhole (bytes dropped one way). Tests skip
//     without the binary unless VIGIL_REQUIRE_DEPS=1.
//
//   - sync/cmdlink is the command channel over MQTT. Receiver is the
//     vehicle's end: Handle (an edge.Subscription handler on the
//     vehicle's cmd topic and vigil/v1/fleet/cmd) checks each message as
//     it arrives (topic, then Verifier.Check: envelope, signature, key,
//     command, target, times, an unspent nonce; one at a time, about 75
//     µs each) and queues only the genuine ones; refusals are counted by
//     class and answered while a token bucket allows (10 a second, burst
//     20); a genuine command that finds the bounded queue full, or whose
//     signing key is over its rate (the key id is the sender: MQTT 3.1.1
//     does not say who published), is answered busy, nonce unspent. One
//     worker spends the nonce (Verifier.Spend), checks Allowed against
//     the supervisor's motion state, runs the Executor with a timeout,
//     records one Event and publishes one Response with the correlation
//     id on vigil/v1/<vehicle>/cmd/res; a rejection carries the
//     correlation id the unverified envelope claims (command.Peek).
//     Sender is the operator's end (signs, publishes on the vehicle's or
//     the fleet's topic, collects responses by correlation id, lists the
//     vehicles' retained statuses); key files hold base64 ed25519 keys.
//     See docs/fleet.md.
//
// Tested against Mosquitto (sync/edge's tests): full drain of three
// streams exactly once, an outage then drain, the broker killed and
// restarted five times during a drain with records still being appended, the
// ingester closed mid-stream and replaced by a new instance over a
// reopened sink, logs on their own topic, subscriptions renewed after a
// broker restart and Publish, SyncNow, an ingester coming online
// resending a lost window at once; the broker killed (SIGKILL) during a
// live stream with the vehicle back before the ingester and after it,
// live records stored within 2 s (1.1 s and about 0.8 s) of the
// broker's return; over mutual TLS with FleetACL a
// drain exactly once, clients without a certificate or with another
// CA's refused, a vehicle's certificate unable to publish batches under
// another vehicle's id or read its acks; live records acknowledged long
// before a 512 KiB backlog (drained under a bandwidth cap) and no live
// batch sent twice; a drain no faster than MaxBytesPerSecond allows; an
// ingester replica of two killed abruptly mid-stream; acks lost on the
// ingester's side (answered duplicate when resent); the edge severed
// after a store (queued acks and a command delivered again). Each checks
// every record once in the cloud, in order, with no unexplained gap, and
// edge cursors at the durable seqs.
//
// Also: sync/cmdlink's tests (each rejection class, a replay after a
// restart, "all" answered by two vehicles, the receiver on the
// uploader's connection, a flood of 2,000 forged, unknown-key, expired,
// replayed and malformed messages with eleven valid commands among them,
// each valid one executed and answered), agent's (vigild killed with SIGKILL mid-drain
// and restarted: every durable record in the cloud once; fleet commands
// end to end over mutual TLS with the ACL, a replay refused after a
// restart) and make fleet-demo (vigild, vigil-fleet ingest and signed
// commands as an operator runs them).
//
// # Not built yet
//
//   - Checkpoints (vigil/v1/<vehicle>/checkpoints): planned, not issued.
//   - Throughput: the drain is CPU-bound (reading the store, compressing,
//     the sink's sync per batch); on loopback it reaches a small
//     fraction of a bare publisher's rate, behind a vehicle-like uplink
//     most of it (vigil-bench sync, --uplink).
//
// Fixed limit: a vehicle whose store was wiped (moved aside as corrupt)
// restarts its sequence numbers at 1, and the sink took its new records
// for duplicates, acked them, and the edge deleted them. Each store now
// has an incarnation id (storage's Store.StoreID, which is Outbox.StoreID: random,
// non-zero, drawn when the directory is created and kept across reopens,
// new when a directory is moved aside). Every batch header carries it,
// the sink keys records, files and reports on (vehicle, store, stream,
// seq), and acks carry it back so that the edge can ignore an ack for an
// earlier incarnation's batch with the same range.
package sync
