package cmdlink

import (
	"strings"

	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/command"
)

// Topics of the command channel.
const (
	// FleetCommandTopic carries envelopes addressed to every vehicle
	// (target "all").
	FleetCommandTopic = "vigil/v1/fleet/cmd"
	// ResponseFilter matches every vehicle's response topic.
	ResponseFilter = "vigil/v1/+/cmd/res"
	// StatusFilter matches every vehicle's retained status.
	StatusFilter = "vigil/v1/+/status"
)

// Status payloads the edge uploader retains on vigil/v1/<vehicle>/status.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// CommandTopic is where envelopes addressed to vehicle go.
func CommandTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/cmd" }

// ResponseTopic is where vehicle answers.
func ResponseTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/cmd/res" }

// StatusTopic is vehicle's retained status.
func StatusTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/status" }

// TargetTopic is the topic an envelope for target is published on: the
// fleet topic for "all", the vehicle's command topic otherwise.
func TargetTopic(target string) string {
	if target == command.TargetAll {
		return FleetCommandTopic
	}
	return CommandTopic(target)
}

// ValidVehicle reports whether id can name a vehicle: a valid topic level
// (letters, digits, '-', '_', '.'; at most 64) other than "all" and
// "fleet", which name the whole fleet.
func ValidVehicle(id string) bool {
	return batch.ValidName(id) && id != command.TargetAll && id != "fleet"
}

// vehicleOf returns <vehicle> of vigil/v1/<vehicle>/<rest...> when the
// rest is exactly suffix.
func vehicleOf(topic, suffix string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, "vigil/v1/")
	if !ok {
		return "", false
	}
	v, ok := strings.CutSuffix(rest, "/"+suffix)
	if !ok || !ValidVehicle(v) {
		return "", false
	}
	return v, true
}

// VehicleFromResponseTopic returns the vehicle of vigil/v1/<vehicle>/cmd/res.
func VehicleFromResponseTopic(topic string) (string, bool) { return vehicleOf(topic, "cmd/res") }

// VehicleFromStatusTopic returns the vehicle of vigil/v1/<vehicle>/status.
func VehicleFromStatusTopic(topic string) (string, bool) { return vehicleOf(topic, "status") }
