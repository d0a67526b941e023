package presence

import (
	"errors"
	"fmt"
	"maps"
	"strings"
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
		`{"v":3,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000}`,
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

func TestHeartbeatVersion2(t *testing.T) {
	h := Heartbeat{Vehicle: "veh-1", Boot: 3, Seq: 42, Wall: time.UnixMilli(1764100000000), Mono: 420512 * time.Millisecond, Interval: 10 * time.Second,
		Store: 0xfedcba9876543210, Heads: map[string]uint64{"telemetry": 1234, "logs": 77, "health": 0}}
	raw, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":2,"vehicle":"veh-1","boot":3,"seq":42,"wall_ms":1764100000000,"mono_ms":420512,"interval_ms":10000,"store":"fedcba9876543210","heads":{"health":0,"logs":77,"telemetry":1234}}`
	if string(raw) != want {
		t.Fatalf("encoded %s, want %s", raw, want)
	}
	got, err := DecodeHeartbeat(raw)
	if err != nil || got.Store != h.Store || !maps.Equal(got.Heads, h.Heads) || got.Seq != 42 || !got.Wall.Equal(h.Wall) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// No heads yet: an empty object, which decodes as an empty map.
	h.Heads = nil
	raw, err = h.Encode()
	if err != nil || !strings.HasSuffix(string(raw), `"store":"fedcba9876543210","heads":{}}`) {
		t.Fatalf("encoded %s, %v", raw, err)
	}
	if got, err := DecodeHeartbeat(raw); err != nil || got.Heads == nil || len(got.Heads) != 0 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// The largest heartbeat there can be fits MaxHeartbeat.
	h.Heads, h.Boot, h.Seq, h.Mono = map[string]uint64{}, ^uint32(0), ^uint64(0), 1<<62
	for i := range MaxHeads {
		h.Heads[fmt.Sprintf("%064d", i)] = ^uint64(0)
	}
	h.Vehicle = strings.Repeat("v", 64)
	raw, err = h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeHeartbeat(raw); err != nil || len(raw) > MaxHeartbeat {
		t.Fatalf("a heartbeat of %d bytes with %d heads: %v", len(raw), MaxHeads, err)
	}
	h.Heads["one-more"] = 1
	if _, err := h.Encode(); !errors.Is(err, ErrHeartbeat) {
		t.Errorf("%d heads encoded: %v", len(h.Heads), err)
	}
	if _, err := (Heartbeat{Vehicle: "v", Seq: 1, Wall: time.UnixMilli(1), Interval: time.Second, Heads: map[string]uint64{"s": 1}}).Encode(); !errors.Is(err, ErrHeartbeat) {
		t.Errorf("heads without a store encoded: %v", err)
	}
}

func TestDecodeHeartbeatVersion2Refuses(t *testing.T) {
	const head = `{"v":2,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000`
	for _, raw := range []string{
		head + `}`, // neither store nor heads
		head + `,"store":"fedcba9876543210"}`,
		head + `,"heads":{}}`,
		head + `,"store":"0000000000000000","heads":{}}`,
		head + `,"store":"FEDCBA9876543210","heads":{}}`,
		head + `,"store":"fedcba987654321","heads":{}}`,
		head + `,"store":"fedcba98765432100","heads":{}}`,
		head + `,"store":"fedcba987654321g","heads":{}}`,
		head + `,"store":1234,"heads":{}}`,
		head + `,"store":"fedcba9876543210","heads":{"../x":1}}`,
		head + `,"store":"fedcba9876543210","heads":{"logs":-1}}`,
		head + `,"store":"fedcba9876543210","heads":[]}`,
		`{"v":1,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000,"store":"fedcba9876543210"}`,
		`{"v":1,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000,"heads":{}}`,
		`{"v":3,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000,"store":"fedcba9876543210","heads":{}}`,
		head + `,"store":"fedcba9876543210","heads":{}` + strings.Repeat(" ", MaxHeartbeat) + `}`,
	} {
		if _, err := DecodeHeartbeat([]byte(raw)); !errors.Is(err, ErrHeartbeat) {
			t.Errorf("%.200s: %v, want ErrHeartbeat", raw, err)
		}
	}
}
