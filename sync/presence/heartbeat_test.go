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

// TestHeartbeatVersion3: a heartbeat with what the vehicle runs is version
// 3, which carries version 2's fields and the software; the largest still
// fits MaxHeartbeat.
func TestHeartbeatVersion3(t *testing.T) {
	sw := &Software{Version: "0.3.1", Commit: "9083a3363c19d005a9a4f9255f89da99e6916aca", ONNXRuntime: "1.24.3"}
	h := Heartbeat{Vehicle: "veh-1", Boot: 3, Seq: 42, Wall: time.UnixMilli(1764100000000), Mono: 420512 * time.Millisecond, Interval: 10 * time.Second,
		Store: 0xfedcba9876543210, Heads: map[string]uint64{"logs": 77}, Software: sw}
	raw, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":3,"vehicle":"veh-1","boot":3,"seq":42,"wall_ms":1764100000000,"mono_ms":420512,"interval_ms":10000,` +
		`"software":{"version":"0.3.1","commit":"9083a3363c19d005a9a4f9255f89da99e6916aca","onnxruntime":"1.24.3"},"store":"fedcba9876543210","heads":{"logs":77}}`
	if string(raw) != want {
		t.Fatalf("encoded %s, want %s", raw, want)
	}
	got, err := DecodeHeartbeat(raw)
	if err != nil || got.Software == nil || *got.Software != *sw || got.Store != h.Store || !maps.Equal(got.Heads, h.Heads) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// Without software: version 2 as before, decoding with none.
	h.Software = nil
	raw, _ = h.Encode()
	if got, err := DecodeHeartbeat(raw); err != nil || !strings.HasPrefix(string(raw), `{"v":2,`) || got.Software != nil {
		t.Fatalf("version 2: %s: %+v, %v", raw, got, err)
	}

	long := strings.Repeat("x", MaxSoftwareField)
	h.Software = &Software{Version: long, Commit: long, ONNXRuntime: long}
	h.Heads, h.Boot, h.Seq, h.Mono = map[string]uint64{}, ^uint32(0), ^uint64(0), 1<<62
	for i := range MaxHeads {
		h.Heads[fmt.Sprintf("%064d", i)] = ^uint64(0)
	}
	h.Vehicle = strings.Repeat("v", 64)
	if raw, err = h.Encode(); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeHeartbeat(raw); err != nil || len(raw) > MaxHeartbeat {
		t.Fatalf("the largest version 3 heartbeat, %d bytes: %v", len(raw), err)
	}

	for name, bad := range map[string]Software{
		"no version": {Commit: "c", ONNXRuntime: "1"}, "no commit": {Version: "1", ONNXRuntime: "1"}, "no onnxruntime": {Version: "1", Commit: "c"},
		"too long": {Version: long + "x", Commit: "c", ONNXRuntime: "1"}, "a newline": {Version: "1\n", Commit: "c", ONNXRuntime: "1"},
		"not ASCII": {Version: "1", Commit: "c", ONNXRuntime: "1.24.3\u00e9"},
	} {
		h := Heartbeat{Vehicle: "v", Seq: 1, Wall: time.UnixMilli(1), Interval: time.Second, Store: 1, Software: &bad}
		if _, err := h.Encode(); !errors.Is(err, ErrHeartbeat) {
			t.Errorf("software with %s encoded: %v", name, err)
		}
	}
	if _, err := (Heartbeat{Vehicle: "v", Seq: 1, Wall: time.UnixMilli(1), Interval: time.Second, Software: sw}).Encode(); !errors.Is(err, ErrHeartbeat) {
		t.Errorf("software without a store encoded: %v", err)
	}
}

func TestDecodeHeartbeatVersion3Refuses(t *testing.T) {
	const head = `,"vehicle":"veh-1","boot":3,"seq":1,"wall_ms":1,"mono_ms":0,"interval_ms":10000`
	const sw = `,"software":{"version":"0.3.1","commit":"abc","onnxruntime":"1.24.3"}`
	for _, raw := range []string{
		`{"v":3` + head + `,"store":"fedcba9876543210","heads":{}}`,      // no software
		`{"v":2` + head + sw + `,"store":"fedcba9876543210","heads":{}}`, // software in version 2
		`{"v":1` + head + sw + `}`,
		`{"v":3` + head + sw + `}`, // no store, no heads
		`{"v":3` + head + `,"software":{"version":"0.3.1","commit":"abc"},"store":"fedcba9876543210","heads":{}}`,
		`{"v":3` + head + `,"software":{"version":"0.3.1","commit":"abc","onnxruntime":"1.24.3","os":"x"},"store":"fedcba9876543210","heads":{}}`,
		`{"v":3` + head + `,"software":{"version":"","commit":"abc","onnxruntime":"1.24.3"},"store":"fedcba9876543210","heads":{}}`,
		`{"v":3` + head + `,"software":"0.3.1","store":"fedcba9876543210","heads":{}}`,
		`{"v":4` + head + sw + `,"store":"fedcba9876543210","heads":{}}`,
	} {
		if _, err := DecodeHeartbeat([]byte(raw)); !errors.Is(err, ErrHeartbeat) {
			t.Errorf("%s: %v, want ErrHeartbeat", raw, err)
		}
	}
}
