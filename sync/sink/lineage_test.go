package sink

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	gosync "sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/batch"
)

// The restored vehicle of the lineage tests: store dead is the unit that
// died, store restored the replacement, restored from checkpoint ckpt of
// dead, which held dead's events up to parentLast.
const (
	dead       uint64 = 0x0000000000000dea
	restored   uint64 = 0x00000000000000b0
	ckpt              = "000007-incremental"
	parentLast        = 90
)

// encLineage encodes records of vehicle's store with a lineage (parent 0:
// none).
func encLineage(t testing.TB, vehicle string, store uint64, stream string, parent, last uint64, checkpoint string, recs []batch.Record) []byte {
	t.Helper()
	b, err := batch.Encode(batch.Header{Vehicle: vehicle, Store: store, Stream: stream, Boot: 2, Parent: parent, ParentLast: last,
		Checkpoint: checkpoint, Compression: batch.Flate}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ingestOf(t *testing.T, s *Sink, vehicle string, b []byte, want batch.Status) {
	t.Helper()
	ack, err := s.Ingest(vehicle, b)
	if want == batch.StatusRejected {
		if !errors.Is(err, ErrRejected) || ack.Status != want || ack.Reason == "" {
			t.Fatalf("ingest: %s (%q), %v; want a rejection", ack.Status, ack.Reason, err)
		}
		return
	}
	if err != nil || ack.Status != want {
		t.Fatalf("ingest: %s, %v; want %s", ack.Status, err, want)
	}
}

// wall is the wall time data gives record seq.
func wall(seq uint64) time.Time { return time.Unix(1_700_000_000, int64(seq)) }

var hbWall = time.UnixMilli(1_700_000_100_000).UTC()

// restoreScenario: the dead store sent events 1..100 and said in its
// last heartbeat that it held 130; the restored store (checkpoint held
// 1..90) re-sends the dead store's 81..90 under the dead store's id
// (duplicates), then its own 91..120 with the lineage, in two
// overlapping batches; and logs 6..8 (the checkpoint held logs 1..5).
func restoreScenario(t *testing.T, s *Sink) {
	t.Helper()
	for first := uint64(1); first <= 100; first += 20 {
		ingestOf(t, s, veh, encStore(t, dead, "events", data(first, first+19)), batch.StatusStored)
	}
	hb := Heartbeat{Boot: 2, Seq: 40, Wall: hbWall, Heads: map[string]uint64{"events": 130, "logs": 5}}
	if ok, err := s.NoteHeartbeat(veh, dead, hb); !ok || err != nil {
		t.Fatalf("heartbeat: %v, %v", ok, err)
	}
	ingestOf(t, s, veh, encStore(t, dead, "events", data(81, 90)), batch.StatusDuplicate)
	ingestOf(t, s, veh, encLineage(t, veh, restored, "events", dead, parentLast, ckpt, data(91, 110)), batch.StatusStored)
	ingestOf(t, s, veh, encLineage(t, veh, restored, "events", dead, parentLast, ckpt, data(101, 120)), batch.StatusStored)
	ingestOf(t, s, veh, encLineage(t, veh, restored, "logs", dead, 5, ckpt, data(6, 8)), batch.StatusStored)
}

// TestRestoredLineage: the report shows the lineage, the dead store's
// lost range (101..130: above the checkpoint, up to its last
// heartbeat's head, not stored) with the wall times bounding it, its
// 91..100 stored (not lost), and the restored store's events from 91 with
// nothing missing; every record is stored once; all of it survives a
// reopen.
func TestRestoredLineage(t *testing.T) {
	root := t.TempDir()
	fc := clock.NewFake(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	s, err := Open(root, Options{Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	restoreScenario(t, s)
	recorded := fc.Now().UTC()

	check := func(s *Sink, when string) {
		t.Helper()
		r := s.Report()
		if len(r.Vehicles) != 1 || len(r.Corrupt) != 0 {
			t.Fatalf("%s: %+v", when, r)
		}
		v := r.Vehicles[0]
		if len(v.Stores) != 2 || v.Stores[0].Store != dead || v.Stores[1].Store != restored {
			t.Fatalf("%s: stores not in lineage order: %+v", when, v.Stores)
		}
		wantLineage := &Lineage{Parent: dead, Checkpoint: ckpt, ParentLast: map[string]uint64{"events": parentLast, "logs": 5}, Recorded: recorded}
		if d := v.Stores[1]; !reflect.DeepEqual(d.Lineage, wantLineage) || d.Successors != nil || !d.Known {
			t.Errorf("%s: restored store %+v, lineage %+v; want lineage %+v", when, d, d.Lineage, wantLineage)
		}
		d := v.Stores[0]
		if d.Lineage != nil || d.Heartbeat == nil || d.Heartbeat.Seq != 40 || d.Heartbeat.Heads["events"] != 130 || len(d.Successors) != 1 {
			t.Fatalf("%s: dead store %+v", when, d)
		}
		succ := d.Successors[0]
		wantEvents := LostStream{Stream: "events", Stored: []Range{{1, 100}}, ParentLast: parentLast, ParentLastKnown: true,
			Head: 130, Lost: []Range{{101, 130}}, Count: 30, After: wall(100), Before: hbWall}
		wantLogs := LostStream{Stream: "logs", ParentLast: 5, ParentLastKnown: true, Head: 5}
		if succ.Store != restored || succ.Checkpoint != ckpt || succ.Lost != 30 || len(succ.Streams) != 2 {
			t.Fatalf("%s: successor %+v", when, succ)
		}
		if got := succ.Streams[0]; !reflect.DeepEqual(got, wantEvents) || !got.After.Equal(wall(100)) {
			t.Errorf("%s: events lost\n got %+v\nwant %+v", when, got, wantEvents)
		}
		if got := succ.Streams[1]; !reflect.DeepEqual(got, wantLogs) {
			t.Errorf("%s: logs lost\n got %+v\nwant %+v", when, got, wantLogs)
		}
		ev := streamOf(r, restored, "events")
		if ev == nil || ev.From != 91 || ev.HighWater != 120 || ev.Through != 120 || ev.Records != 30 || len(ev.Missing) != 0 {
			t.Errorf("%s: restored events %+v", when, ev)
		}
		if lg := streamOf(r, restored, "logs"); lg == nil || lg.From != 6 || lg.Through != 8 || len(lg.Missing) != 0 {
			t.Errorf("%s: restored logs %+v", when, lg)
		}
		if de := streamOf(r, dead, "events"); de == nil || de.From != 1 || de.Through != 100 || len(de.Missing) != 0 {
			t.Errorf("%s: dead events %+v", when, de)
		}
		// Exactly once, across the lineage.
		for _, c := range []struct {
			store       uint64
			first, last uint64
		}{{dead, 1, 100}, {restored, 91, 120}} {
			n := scanAll(t, s, c.store, "events")
			if len(n) != int(c.last-c.first+1) {
				t.Errorf("%s: store %016x: %d records stored, want %d", when, c.store, len(n), c.last-c.first+1)
			}
			for seq, k := range n {
				if k != 1 || seq < c.first || seq > c.last {
					t.Errorf("%s: store %016x: seq %d stored %d times", when, c.store, seq, k)
				}
			}
		}
	}
	check(s, "before reopening")
	fc.Advance(time.Hour)
	check(open(t, root), "after reopening")
	if _, err := os.Stat(filepath.Join(root, veh, storeDir(restored), "events", lineageName)); err != nil {
		t.Errorf("no lineage file beside the restored store's segments: %v", err)
	}
}

// TestLineageRefused: a lineage that contradicts the recorded one
// (another parent last, checkpoint or parent), the parent's records
// under the restored store's id, and a first lineage for a stream that
// already holds records up to its parent last are rejected with a
// reason; nothing changes, here or after a reopen.
func TestLineageRefused(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	restoreScenario(t, s)
	lineageFile := filepath.Join(root, veh, storeDir(restored), "events", lineageName)
	before, err := os.ReadFile(lineageFile)
	if err != nil {
		t.Fatal(err)
	}
	want := s.Report()
	const fresh uint64 = 0xf7e5
	ingestOf(t, s, veh, encStore(t, fresh, "events", data(1, 5)), batch.StatusStored)
	for name, b := range map[string][]byte{
		"another parent last":   encLineage(t, veh, restored, "events", dead, 95, ckpt, data(121, 125)),
		"another checkpoint":    encLineage(t, veh, restored, "events", dead, parentLast, "000008-full", data(121, 125)),
		"another parent":        encLineage(t, veh, restored, "events", 0xbad, parentLast, ckpt, data(121, 125)),
		"another stream's":      encLineage(t, veh, restored, "health", dead, 3, "000008-full", data(4, 5)),
		"parent's records":      encStore(t, restored, "events", data(85, 95)),
		"already holds to last": encLineage(t, veh, fresh, "events", dead, 10, ckpt, data(11, 12)),
	} {
		ack, err := s.Ingest(veh, b)
		if !errors.Is(err, ErrRejected) || !errors.Is(err, ErrLineage) || ack.Status != batch.StatusRejected || ack.Reason == "" {
			t.Errorf("%s: %s (%q), %v; want rejected with ErrLineage", name, ack.Status, ack.Reason, err)
		}
		t.Logf("%s: %s", name, ack.Reason)
	}
	// A batch without lineage after the parent last is the restored
	// store's own: accepted.
	ingestOf(t, s, veh, encStore(t, restored, "events", data(121, 121)), batch.StatusStored)
	after, err := os.ReadFile(lineageFile)
	if err != nil || string(after) != string(before) {
		t.Errorf("lineage file changed: %s, %v", after, err)
	}
	for _, s := range []*Sink{s, open(t, root)} {
		got := s.Report()
		v, w := got.Vehicles[0], want.Vehicles[0]
		if !reflect.DeepEqual(v.Stores[0].Successors, w.Stores[0].Successors) || !reflect.DeepEqual(v.Stores[1].Lineage, w.Stores[1].Lineage) {
			t.Errorf("report changed:\n got %+v\nwant %+v", v.Stores, w.Stores)
		}
		if sr := streamOf(got, restored, "health"); sr != nil {
			t.Errorf("refused stream stored: %+v", sr)
		}
		if sr := streamOf(got, fresh, "events"); sr == nil || sr.HighWater != 5 || got.Vehicles[0].Stores[len(got.Vehicles[0].Stores)-1].Lineage != nil {
			t.Errorf("fresh store: %+v", sr)
		}
	}
}

// TestHeartbeatOnlyForward: a heartbeat before the recorded one in
// (boot, seq) does not replace it, in this sink, in another over the same
// directory, or after a reopen; a later one does; bad ones are errors.
func TestHeartbeatOnlyForward(t *testing.T) {
	root := t.TempDir()
	s, other := open(t, root), open(t, root)
	note := func(s *Sink, boot uint32, seq, head uint64, want bool) {
		t.Helper()
		ok, err := s.NoteHeartbeat(veh, dead, Heartbeat{Boot: boot, Seq: seq, Wall: hbWall, Heads: map[string]uint64{"events": head}})
		if err != nil || ok != want {
			t.Fatalf("heartbeat boot %d seq %d: recorded %v, %v; want %v", boot, seq, ok, err, want)
		}
	}
	headOf := func(s *Sink) (uint64, uint64) {
		t.Helper()
		for _, v := range s.Report().Vehicles {
			for _, st := range v.Stores {
				if st.Store == dead && st.Heartbeat != nil {
					return st.Heartbeat.Seq, st.Heartbeat.Heads["events"]
				}
			}
		}
		return 0, 0
	}
	note(s, 3, 10, 130, true)
	note(s, 3, 9, 120, false)  // older seq, same boot
	note(s, 2, 99, 125, false) // older boot
	note(s, 3, 10, 131, false) // the same one again
	note(other, 3, 9, 120, false)
	if seq, head := headOf(open(t, root)); seq != 10 || head != 130 {
		t.Errorf("after stale heartbeats: seq %d head %d, want 10 and 130", seq, head)
	}
	note(other, 4, 1, 140, true) // a new boot
	note(s, 3, 11, 135, false)   // s learns of other's from the file
	if seq, head := headOf(s); seq != 1 || head != 140 {
		t.Errorf("s: seq %d head %d, want 1 and 140", seq, head)
	}
	if seq, head := headOf(open(t, root)); seq != 1 || head != 140 {
		t.Errorf("reopened: seq %d head %d, want 1 and 140", seq, head)
	}
	for name, f := range map[string]func() (bool, error){
		"bad vehicle": func() (bool, error) { return s.NoteHeartbeat("../x", dead, Heartbeat{Seq: 50}) },
		"store 0":     func() (bool, error) { return s.NoteHeartbeat(veh, 0, Heartbeat{Seq: 50}) },
		"seq 0":       func() (bool, error) { return s.NoteHeartbeat(veh, dead, Heartbeat{Boot: 9}) },
		"bad stream": func() (bool, error) {
			return s.NoteHeartbeat(veh, dead, Heartbeat{Boot: 9, Seq: 1, Heads: map[string]uint64{"a/b": 1}})
		},
	} {
		if ok, err := f(); ok || err == nil {
			t.Errorf("%s: recorded %v, %v; want an error", name, ok, err)
		}
	}
	if seq, _ := headOf(open(t, root)); seq != 1 {
		t.Errorf("a bad heartbeat changed the recorded one: seq %d", seq)
	}
}

// TestHeadAtLeast: a dead store whose last heartbeat is older than its
// last stored record has a head of "at least" its highest stored seq;
// its lost range is the holes above the checkpoint, bounded by the
// stored records around them.
func TestHeadAtLeast(t *testing.T) {
	const v2 = "veh-2"
	s := open(t, t.TempDir())
	ingestOf(t, s, v2, encLineage(t, v2, dead, "events", 0, 0, "", data(1, 40)), batch.StatusStored)
	ingestOf(t, s, v2, encLineage(t, v2, dead, "events", 0, 0, "", data(45, 50)), batch.StatusStored)
	if _, err := s.NoteHeartbeat(v2, dead, Heartbeat{Boot: 1, Seq: 3, Wall: hbWall, Heads: map[string]uint64{"events": 42}}); err != nil {
		t.Fatal(err)
	}
	ingestOf(t, s, v2, encLineage(t, v2, restored, "events", dead, 30, "000002-full", data(31, 35)), batch.StatusStored)
	r := s.Report()
	st := r.Vehicles[0].Stores[0]
	if st.Store != dead || len(st.Successors) != 1 {
		t.Fatalf("stores %+v", r.Vehicles[0].Stores)
	}
	want := LostStream{Stream: "events", Stored: []Range{{1, 40}, {45, 50}}, ParentLast: 30, ParentLastKnown: true, Head: 50, HeadAtLeast: true,
		Lost: []Range{{41, 44}}, Count: 4, After: wall(40), Before: wall(45)}
	if got := st.Successors[0].Streams[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("lost\n got %+v\nwant %+v", got, want)
	}
}

// TestLineageReplicas: two sinks over one directory, each taking a
// restored store's first batches of a stream at the same time: every
// stream's lineage is recorded once, a contradicting one is refused
// even when the other replica recorded the stream, and both agree after
// a reopen.
func TestLineageReplicas(t *testing.T) {
	root := t.TempDir()
	a, b := open(t, root), open(t, root)
	streams := []string{"events", "health", "inference", "logs", "s4", "s5"}
	var wg gosync.WaitGroup
	for i, name := range streams {
		for j, s := range []*Sink{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := uint64(10 * (i + 1))
				for k := range uint64(5) {
					raw := encLineage(t, veh, restored, name, dead, last, ckpt, data(last+1+k, last+1+k))
					if ack, err := s.Ingest(veh, raw); err != nil || ack.Status == batch.StatusRejected {
						t.Errorf("replica %d, %s: %s %q, %v", j, name, ack.Status, ack.Reason, err)
					}
				}
				if _, err := s.NoteHeartbeat(veh, restored, Heartbeat{Boot: 1, Seq: uint64(10*i + j + 1), Wall: hbWall}); err != nil {
					t.Errorf("heartbeat: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	// b learns of a's streams from the files.
	ack, err := b.Ingest(veh, encLineage(t, veh, restored, "events", dead, 11, ckpt, data(12, 12)))
	if !errors.Is(err, ErrLineage) || ack.Status != batch.StatusRejected {
		t.Errorf("contradicting lineage: %s, %v", ack.Status, err)
	}
	// The parent sent nothing and no heartbeat: known only as a parent.
	if st := a.Report().Vehicles[0].Stores; len(st) != 2 || st[0].Store != dead || st[0].Known || len(st[0].Successors) != 1 ||
		st[0].Successors[0].Lost != 0 || len(st[0].Successors[0].Streams) != len(streams) {
		t.Errorf("stores %+v", st)
	}
	for _, s := range []*Sink{a, b, open(t, root)} {
		var l *Lineage
		for _, st := range s.Report().Vehicles[0].Stores {
			if st.Store == restored {
				l = st.Lineage
			}
		}
		if l == nil || len(l.ParentLast) != len(streams) {
			t.Fatalf("lineage %+v, want all %d streams", l, len(streams))
		}
		for i, name := range streams {
			if l.ParentLast[name] != uint64(10*(i+1)) {
				t.Errorf("%s: parent last %d", name, l.ParentLast[name])
			}
		}
	}
	es, err := os.ReadDir(filepath.Join(root, veh, storeDir(restored)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if !e.IsDir() && e.Name() != heartbeatName {
			t.Errorf("left in the store's directory: %s", e.Name())
		}
	}
}

// TestLeftoverTempRemoved: a temporary file a crash left in a store's
// directory is removed at Open, and the heartbeat file is read.
func TestLeftoverTempRemoved(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	if _, err := s.NoteHeartbeat(veh, dead, Heartbeat{Boot: 1, Seq: 1, Wall: hbWall, Heads: map[string]uint64{"events": 3}}); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, veh, storeDir(dead), tmpPrefix+heartbeatName+"-x-1")
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := open(t, root).Report()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
	if len(r.Vehicles) != 1 || r.Vehicles[0].Stores[0].Heartbeat == nil || r.Vehicles[0].Stores[0].Heartbeat.Heads["events"] != 3 {
		t.Errorf("report %+v", r)
	}
}
