// Package presence is who is on the link and whether the cloud may
// believe it: the vehicles' heartbeats, the ingester replicas' status,
// their topics and payloads, and the rule that tells a vehicle online
// from one that only looks so.
//
// A vehicle's retained status (vigil/v1/<vehicle>/status, "online" on
// connect, "offline" as its last will) says what the broker last heard,
// and a broker restarted from a snapshot (Mosquitto's persistence) brings
// back the status of that moment: a vehicle that died after the snapshot
// is "online" again. So the uploader also publishes a heartbeat, retained,
// on vigil/v1/<vehicle>/heartbeat every interval (10 s by default), with a
// sequence number, its boot, its wall and monotonic times and the
// interval; Judge calls a vehicle online only when its heartbeat is
// fresher than StaleIntervals intervals, and stale when its status says
// online but its heartbeat is older (or absent).
//
// Each ingester replica keeps a retained status on
// vigil/v1/fleet/ingest/<replica>/status: "online" once its subscriptions
// stand, "offline" as its last will and when it closes. Vehicles
// subscribe to IngestStatusFilter and send again what is waiting for an
// ack as soon as an ingester comes online: batches sent while no ingester
// was subscribed went nowhere.
//
// Watch (watch.go) collects both vehicle topics for vigil-fleet; the rest
// of the package does no I/O and reads no clock.
package presence

import (
	"strings"

	"github.com/vigil-av/vigil/sync/batch"
)

// Status payloads, retained on a vehicle's and on a replica's status
// topic.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// Topic filters of every vehicle's status and heartbeat, and of every
// ingester replica's status.
const (
	StatusFilter       = "vigil/v1/+/status"
	HeartbeatFilter    = "vigil/v1/+/heartbeat"
	IngestStatusFilter = "vigil/v1/fleet/ingest/+/status"
)

// StatusTopic is where vehicle's retained status goes.
func StatusTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/status" }

// HeartbeatTopic is where vehicle's retained heartbeat goes.
func HeartbeatTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/heartbeat" }

// IngestStatusTopic is where ingester replica's retained status goes.
func IngestStatusTopic(replica string) string { return "vigil/v1/fleet/ingest/" + replica + "/status" }

// ValidReplica reports whether name may name an ingester replica: the
// rules of a vehicle id (1 to 64 letters, digits, '-', '_' or '.', not
// starting with '.'), which make it one topic level.
func ValidReplica(name string) bool { return batch.ValidName(name) }

// ParseVehicleTopic returns the vehicle and the kind ("status" or
// "heartbeat") of vigil/v1/<vehicle>/status or .../heartbeat.
func ParseVehicleTopic(topic string) (vehicle, kind string, ok bool) {
	parts := strings.Split(topic, "/")
	if len(parts) != 4 || parts[0] != "vigil" || parts[1] != "v1" || !batch.ValidName(parts[2]) || parts[2] == "fleet" {
		return "", "", false
	}
	if parts[3] != "status" && parts[3] != "heartbeat" {
		return "", "", false
	}
	return parts[2], parts[3], true
}

// ParseIngestStatusTopic returns the replica of
// vigil/v1/fleet/ingest/<replica>/status.
func ParseIngestStatusTopic(topic string) (string, bool) {
	r, ok := strings.CutPrefix(topic, "vigil/v1/fleet/ingest/")
	if !ok {
		return "", false
	}
	r, ok = strings.CutSuffix(r, "/status")
	if !ok || !ValidReplica(r) {
		return "", false
	}
	return r, true
}
