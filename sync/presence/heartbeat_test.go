package presence

import (
	"errors"
	"testing"
	"time"
)

func TestHeartbeatRoundTrip(t *testing.T) {
	h := Heartbeat{Vehicle: "veh-1", Boot: 3, Seq: 42, Wall: time.UnixMilli(1764100000000), Mono: 420512 * time.Millisecond, Interval: 10 * time.Second}
	raw, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":1,"vehicle":"veh-1","boot":3,"seq":42,"wall_ms":1764100000000,"mono_ms":420512,"interval_ms":10000}`
	if string(raw) != want {
		t.Fatalf("encoded %s, want %s", raw, want)
	}
	got, err := DecodeHeartbeat(raw)
	if err != nil || got.Vehicle != h.Vehicle || got.Boot != h.Boot || got.Seq != h.Seq || !got.Wall.Equal(h.Wall) || got.Mono != h.Mono || got.Interval != h.Interval {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}

func TestDecodeHeartbeatRefuses(t *testing.T) {
	for _, raw := range []string{
		``,
		`online`,
		`{"v":2,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000}`,
		`{"v":1,"vehicle":"../x","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000}`,
		`{"v":1,"vehicle":"veh-1","boot":3,"seq":0,"wall_ms":1,"mono_ms":0,"interval_ms":10000}`,
		`{"v":1,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":0,"mono_ms":0,"interval_ms":10000}`,
		`{"v":1,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":-5,"interval_ms":10000}`,
		`{"v":1,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":0}`,
		`{"v":1,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000,"extra":1}`,
		`{"v":1,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000} {}`,
	} {
		if _, err := DecodeHeartbeat([]byte(raw)); !errors.Is(err, ErrHeartbeat) {
			t.Errorf("%s: %v, want ErrHeartbeat", raw, err)
		}
	}
}

func TestTopics(t *testing.T) {
	if v, k, ok := ParseVehicleTopic(HeartbeatTopic("veh-1")); !ok || v != "veh-1" || k != "heartbeat" {
		t.Errorf("heartbeat topic: %q %q %v", v, k, ok)
	}
	if v, k, ok := ParseVehicleTopic(StatusTopic("veh-1")); !ok || v != "veh-1" || k != "status" {
		t.Errorf("status topic: %q %q %v", v, k, ok)
	}
	for _, bad := range []string{"vigil/v1/veh-1/ack", "vigil/v1/fleet/status", "vigil/v2/veh-1/status", "vigil/v1/../status"} {
		if _, _, ok := ParseVehicleTopic(bad); ok {
			t.Errorf("%s parsed", bad)
		}
	}
	if r, ok := ParseIngestStatusTopic(IngestStatusTopic("ingest-a")); !ok || r != "ingest-a" {
		t.Errorf("ingest status: %q %v", r, ok)
	}
	if _, ok := ParseIngestStatusTopic("vigil/v1/fleet/ingest/a/b/status"); ok {
		t.Error("two levels taken for a replica")
	}
}
