// Package ingest is the cloud side of the MQTT link: the Ingester takes
// the batches of vigil/v1/<vehicle>/telemetry and vigil/v1/<vehicle>/logs
// from a shared subscription, stores them in the idempotent sink and
// answers each with an application-level ack on the vehicle's ack topic;
// and it records the vehicles' heartbeats in the sink.
// vigil-fleet ingest runs it.
//
//	in, err := ingest.New(cfg, sk, log) // cfg.Broker, cfg.Group, cfg.Replica, cfg.TLS; sk from sink.Open
//	err = in.Start(ctx)
//	...
//	err = in.Close(ctx)
//
// # How a batch goes
//
// The subscriptions are $share/<group>/vigil/v1/+/telemetry and
// $share/<group>/vigil/v1/+/logs at QoS 1, with manual MQTT acks:
// replicas in one group split the fleet. For each message:
//
//   - a topic that names no valid vehicle is counted (Stats.BadTopic)
//     and acknowledged to the broker, nothing else;
//   - a batch whose stream does not belong on the topic it came on (logs
//     on telemetry, any other stream on logs) is rejected with the reason
//     and not stored (Stats.WrongTopic);
//   - every other goes to sink.Sink.Ingest under the vehicle the topic
//     names; the ack it returns (stored, duplicate or rejected) is
//     published on vigil/v1/<vehicle>/ack at QoS 1, and only then is the
//     message acknowledged to the broker;
//   - on the sink's own failure no ack is published and the edge resends;
//     the MQTT-level ack is still given, since MQTT 3.1.1 redelivers only
//     on reconnection and withholding it would only hold an in-flight
//     slot.
//
// # Heartbeats
//
// The ingester also subscribes to every vehicle's heartbeat,
// vigil/v1/+/heartbeat (sync/presence), at QoS 1 and not shared: every
// replica gets every heartbeat, and the retained last one of each
// vehicle when it (re)subscribes, so a restarted ingester learns what it
// missed. A heartbeat of version 2 names the store it speaks for and its
// per-stream heads; sink.Sink.NoteHeartbeat records it per (vehicle,
// store) unless the sink holds a later one in (boot, seq). When that
// store dies, the heads bound what it lost (sink.Report). Version 1
// heartbeats (no store) are skipped; a heartbeat that does not decode,
// or names another vehicle than its topic, is counted
// (Stats.HeartbeatErrors) and logged.
//
// # The connection
//
// Paho's auto-reconnect (at once, then every ReconnectMax, 1 s), the
// subscriptions renewed in OnConnect (a refused one drops the connection
// through sync/internal/mqttsub), after which the replica publishes a
// retained "online" on vigil/v1/fleet/ingest/<Replica>/status ("offline"
// is its last will and what Close publishes): vehicles then send again
// what they sent while no ingester was subscribed. Sessions are clean by
// default (Config.PersistentSession to change): a dead replica's
// persistent session would keep receiving its share of the messages.
// Replicas may each open a sink.Sink over one directory.
package ingest
