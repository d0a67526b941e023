package ingest

import (
	"errors"
	"testing"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
)

func TestParseTopic(t *testing.T) {
	type want struct{ vehicle, kind string }
	for topic, w := range map[string]want{
		"vigil/v1/veh-1/telemetry": {"veh-1", KindTelemetry},
		"vigil/v1/veh-1/logs":      {"veh-1", KindLogs},
		"vigil/v1/veh-1/ack":       {},
		"vigil/v1/veh-1/status":    {},
		"vigil/v2/veh-1/telemetry": {},
		"vigil/v1/.x/telemetry":    {},
		"vigil/v1//telemetry":      {},
		"vigil/v1/a/b/telemetry":   {},
		"vigil/v1/a/logs/x":        {},
	} {
		v, k, ok := ParseTopic(topic)
		if v != w.vehicle || k != w.kind || ok != (w.vehicle != "") {
			t.Errorf("ParseTopic(%q) = %q, %q, %v; want %q, %q", topic, v, k, ok, w.vehicle, w.kind)
		}
		v2, ok2 := VehicleFromTopic(topic)
		if v2 != w.vehicle || ok2 != ok {
			t.Errorf("VehicleFromTopic(%q) = %q, %v", topic, v2, ok2)
		}
	}
}

func TestKindOf(t *testing.T) {
	if KindOf(record.StreamLogs) != KindLogs {
		t.Errorf("logs stream goes on %q", KindOf(record.StreamLogs))
	}
	for _, s := range []string{record.StreamEvents, record.StreamInference, record.StreamHealth, "other"} {
		if KindOf(s) != KindTelemetry {
			t.Errorf("%s goes on %q", s, KindOf(s))
		}
	}
}

func TestPeekHeader(t *testing.T) {
	recs := []batch.Record{{Seq: 7, Kind: record.KindData, Payload: []byte("hello")}, {Seq: 8, Kind: record.KindData, Payload: []byte("world")}}
	raw, err := batch.Encode(batch.Header{Vehicle: "veh-1", Stream: record.StreamLogs, Store: 7, Boot: 3, Compression: batch.Flate}, recs)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := peekHeader(raw)
	if !ok || h.Vehicle != "veh-1" || h.Stream != record.StreamLogs || h.FirstSeq != 7 || h.LastSeq != 8 || h.Boot != 3 {
		t.Fatalf("peekHeader = %+v, %v", h, ok)
	}
	// A corrupt body still has a readable header; the sink rejects it.
	bad := append([]byte(nil), raw...)
	bad[len(bad)-1] ^= 0xff
	if h, ok := peekHeader(bad); !ok || h.Stream != record.StreamLogs {
		t.Fatalf("peekHeader(corrupt body) = %+v, %v", h, ok)
	}
	if _, ok := peekHeader([]byte("junk")); ok {
		t.Fatal("peekHeader(junk) parsed")
	}
	if _, ok := peekHeader(raw[:10]); ok {
		t.Fatal("peekHeader(truncated header) parsed")
	}
	if _, _, err := batch.DecodeLimit(raw, -1); !errors.Is(err, batch.ErrTooLarge) {
		t.Fatalf("DecodeLimit(-1) = %v; peekHeader relies on ErrTooLarge", err)
	}
}
