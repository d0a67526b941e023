package bundlelink

import (
	"strings"

	"github.com/vigil-av/vigil/sync/batch"
)

// RequestTopic is where vehicle asks for what it is missing of a bundle.
func RequestTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/bundles/req" }

// DataTopic is where the fleet side answers vehicle.
func DataTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/bundles/data" }

// RequestFilter matches every vehicle's request topic; the Server
// subscribes to it as $share/<group>/<RequestFilter>.
const RequestFilter = "vigil/v1/+/bundles/req"

// VehicleFromTopic returns the vehicle of vigil/v1/<vehicle>/bundles/req.
func VehicleFromTopic(topic string) (string, bool) {
	parts := strings.Split(topic, "/")
	if len(parts) != 5 || parts[0] != "vigil" || parts[1] != "v1" || parts[3] != "bundles" || parts[4] != "req" || !batch.ValidName(parts[2]) {
		return "", false
	}
	return parts[2], true
}
