package ckptlink

import (
	"strings"

	"github.com/vigil-av/vigil/sync/batch"
)

// Topic is where vehicle publishes its checkpoints' chunks and manifests.
func Topic(vehicle string) string { return "vigil/v1/" + vehicle + "/checkpoints" }

// AckTopic is where the cloud acknowledges them to vehicle.
func AckTopic(vehicle string) string { return Topic(vehicle) + "/ack" }

// Filter matches every vehicle's checkpoint topic; the Receiver
// subscribes to it as $share/<group>/<Filter>.
const Filter = "vigil/v1/+/checkpoints"

// VehicleFromTopic returns the vehicle of vigil/v1/<vehicle>/checkpoints.
func VehicleFromTopic(topic string) (string, bool) {
	parts := strings.Split(topic, "/")
	if len(parts) != 4 || parts[0] != "vigil" || parts[1] != "v1" || parts[3] != "checkpoints" || !batch.ValidName(parts[2]) {
		return "", false
	}
	return parts[2], true
}
