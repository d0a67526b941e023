package edge

import (
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/presence"
)

// Topics of one vehicle.
func TelemetryTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/telemetry" }
func LogsTopic(vehicle string) string      { return "vigil/v1/" + vehicle + "/logs" }
func AckTopic(vehicle string) string       { return "vigil/v1/" + vehicle + "/ack" }
func StatusTopic(vehicle string) string    { return "vigil/v1/" + vehicle + "/status" }
func HeartbeatTopic(vehicle string) string { return presence.HeartbeatTopic(vehicle) }

// StreamTopic is the topic the batches of stream go on: the logs stream
// (storage.StreamLogs) on the logs topic, every other on telemetry.
func StreamTopic(vehicle, stream string) string {
	if stream == storage.StreamLogs {
		return LogsTopic(vehicle)
	}
	return TelemetryTopic(vehicle)
}

// Status payloads, retained on the status topic.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)
