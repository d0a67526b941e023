package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/sink"
)

// TestReportRestoredVehicle: a vehicle whose store died and was restored
// from a checkpoint: report shows the restored store's lineage and where
// its streams start, the dead store's lost range with its count and
// bounds, no record missing, and the same in --json.
func TestReportRestoredVehicle(t *testing.T) {
	const dead, restored uint64 = 0xdea, 0xb0
	dir := filepath.Join(t.TempDir(), "sink")
	s, err := sink.Open(dir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ingest := func(store, parent, parentLast uint64, first, last uint64) {
		t.Helper()
		var recs []batch.Record
		for q := first; q <= last; q++ {
			recs = append(recs, batch.Record{Seq: q, Kind: record.KindData, Boot: 1, Wall: time.Unix(1_700_000_000+int64(q), 0), Payload: []byte("x")})
		}
		h := batch.Header{Vehicle: "veh-1", Stream: record.StreamEvents, Boot: 1, Store: store, Parent: parent, ParentLast: parentLast}
		if parent != 0 {
			h.Checkpoint = "000007-incremental"
		}
		raw, err := batch.Encode(h, recs)
		if err != nil {
			t.Fatal(err)
		}
		if ack, err := s.Ingest("veh-1", raw); err != nil || ack.Status == batch.StatusRejected {
			t.Fatalf("ingest: %+v, %v", ack, err)
		}
	}
	ingest(dead, 0, 0, 1, 100)
	if _, err := s.NoteHeartbeat("veh-1", dead, sink.Heartbeat{Boot: 1, Seq: 9, Wall: time.Unix(1_700_000_500, 0),
		Heads: map[string]uint64{record.StreamEvents: 130}}); err != nil {
		t.Fatal(err)
	}
	ingest(dead, 0, 0, 81, 90)
	ingest(restored, dead, 90, 91, 120)

	out, _, err := fleet(t, "report", "--sink", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out)
	for _, want := range []string{
		"veh-1: store incarnations, in lineage order\n  0000000000000dea\n",
		"    last heartbeat: boot 1 seq 9, vehicle clock 2023-11-14T22:21:40Z",
		"    superseded by 00000000000000b0 at checkpoint 000007-incremental: 30 records lost\n",
		"      events: checkpoint held to 90; stored 1-100; head 130 (its last heartbeat); lost 101-130 (30 records), written after 2023-11-14T22:15:00Z, before 2023-11-14T22:21:40Z\n",
		"  00000000000000b0 restored from 0000000000000dea at checkpoint 000007-incremental (first batch ",
		"starts at events 91\n",
		"30 records lost in failures (see the incarnations above)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "missing without explanation") {
		t.Errorf("report shows records missing:\n%s", out)
	}
	if strings.Index(out, "0000000000000dea  events") > strings.Index(out, "00000000000000b0  events") {
		t.Errorf("streams not in lineage order:\n%s", out)
	}

	out, _, err = fleet(t, "report", "--sink", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r sink.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Vehicles) != 1 || len(r.Vehicles[0].Stores) != 2 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	st := r.Vehicles[0].Stores
	if st[1].Lineage == nil || st[1].Lineage.Parent != dead || st[1].Lineage.ParentLast[record.StreamEvents] != 90 ||
		len(st[0].Successors) != 1 || st[0].Successors[0].Lost != 30 || st[0].Successors[0].Streams[0].Lost[0] != (sink.Range{First: 101, Last: 130}) {
		t.Errorf("json stores: %+v", st)
	}
}
