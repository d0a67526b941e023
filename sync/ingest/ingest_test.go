package ingest

import "testing"

func TestVehicleFromTopic(t *testing.T) {
	for topic, want := range map[string]string{
		"vigil/v1/veh-1/telemetry": "veh-1",
		"vigil/v1/veh-1/logs":      "",
		"vigil/v2/veh-1/telemetry": "",
		"vigil/v1/.x/telemetry":    "",
		"vigil/v1//telemetry":      "",
		"vigil/v1/a/b/telemetry":   "",
	} {
		got, ok := VehicleFromTopic(topic)
		if got != want || ok != (want != "") {
			t.Errorf("VehicleFromTopic(%q) = %q, %v; want %q", topic, got, ok, want)
		}
	}
}
