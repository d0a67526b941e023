// Package edge is the vehicle side of the MQTT link: the Uploader, which
// drains the storage outbox to the broker in batches and moves the
// outbox cursor only on the ingester's application-level
// acknowledgements, and which carries the command channel's
// subscriptions on the same connection.
//
// # Using it
//
//	up, err := edge.New(cfg, store, log) // cfg.Broker, cfg.Vehicle, cfg.TLS, cfg.Subscriptions
//	err = up.Start(ctx)
//	...
//	err = up.Close(ctx)
//
// State and Stats report the link; Publish publishes at QoS 1 over the
// link and waits for the PUBACK (ErrOffline while it is down);
// PublishBulk does too for bulk traffic (checkpoint uploads), behind
// telemetry and within the rate cap, and TakeBulk waits the same way and
// takes bytes from the rate cap without publishing (a model download's
// share of the link, bulk.go); SyncNow
// resends what is in flight at once and cuts a reconnect wait short.
//
// # Parts
//
//   - The connection (link.go): a persistent session (fixed client id,
//     CleanSession false), reconnected in its own loop with capped,
//     jittered exponential backoff and a fresh paho client per attempt
//     (paho never frees the message ids a lost connection cut off).
//     Each connection subscribes in one SUBSCRIBE to the vehicle's ack
//     topic, the ingester replicas' status and Config.Subscriptions
//     (whose routes are installed before connecting: the session may
//     deliver queued messages first), then publishes a retained "online"
//     (the last will is a retained "offline").
//   - The drain loop (drain.go): one goroutine owns every stream's state.
//     Each stream is packed from its cursor with batch.Packer into a
//     window of batches published at QoS 1 without waiting for PUBACK,
//     the logs stream on the logs topic, every other on telemetry. When
//     the link comes up with a backlog, a live lane sends the records
//     appended since ahead of it; the cursor still moves only through
//     the acknowledged prefix. It wakes on acks, on the outbox's
//     DurableChanged, on (re)connection, on SyncNow and on its timers.
//   - Pacing (pace.go): the backlogs share a budget of bytes in flight
//     sized from the connection's lowest ack round trip and highest
//     recent delivery rate; MaxBytesPerSecond caps the bytes published
//     (rate.go, a token bucket).
//   - The ack timeout (rto.go): after RFC 6298, from the smoothed ack
//     round trip, between AckTimeoutMin and AckTimeout, doubled per round
//     of expiries while nothing is acknowledged.
//   - Presence (presence.go): a retained heartbeat every
//     HeartbeatInterval while connected, and everything in flight sent
//     again when an ingester replica comes online.
//   - Bulk traffic (bulk.go): PublishBulk waits while the drain loop
//     catches up a backlog or has records not sent yet (a gate it sets
//     at each step), then for its bytes in the rate bucket, leaving a
//     quarter of the bucket for live batches; TakeBulk waits the same
//     way (one waiting loop, waitBulk) and only takes the bytes.
//   - config.go (Config and its defaults), topics.go, stats.go (State,
//     Stats).
//
// # What an ack does
//
// An ack (batch.Ack, of this store incarnation; others are ignored)
// covers each batch in flight whose range it covers. Stored and
// duplicate move the cursor through the acknowledged prefix, and storage
// deletes what lies behind it; a rejection is counted and reported, never
// acknowledged, and the batch goes again after a doubling wait (up to
// RejectBackoffMax). Unacknowledged batches go again after the ack
// timeout, after every reconnection, when an ingester replica comes
// online and on SyncNow. A record that fits in no batch stalls its stream
// with an error rather than being skipped (storage's MaxRecordBytes keeps
// it from happening).
//
// Handlers of Config.Subscriptions run on paho's goroutines, one per
// message, and must not block. Paho is given a store that keeps nothing
// (sync/internal/pahostore): the outbox is storage's, and resends are the
// uploader's own.
package edge
