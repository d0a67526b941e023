package sink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
)

const veh = "veh-1"

// storeA is the store id of the tests' batches.
const storeA uint64 = 0xa1b2c3d4e5f60718

func data(first, last uint64) []batch.Record {
	var out []batch.Record
	for s := first; s <= last; s++ {
		out = append(out, batch.Record{Seq: s, Kind: record.KindData, Boot: 2, Mono: time.Duration(s), Wall: time.Unix(1_700_000_000, int64(s)),
			Payload: []byte(fmt.Sprintf("record %d", s))})
	}
	return out
}

// gapPayload encodes a gap as storage does (version 1, reason, first,
// last, count).
func gapPayload(reason record.GapReason, first, last, count uint64) []byte {
	b := []byte{1, byte(reason)}
	b = binary.BigEndian.AppendUint64(b, first)
	b = binary.BigEndian.AppendUint64(b, last)
	return binary.BigEndian.AppendUint64(b, count)
}

func gapRec(seq uint64, reason record.GapReason, first, last, count uint64) batch.Record {
	return batch.Record{Seq: seq, Kind: record.KindGap, Boot: 2, Payload: gapPayload(reason, first, last, count)}
}

func enc(t testing.TB, stream string, recs []batch.Record) []byte {
	t.Helper()
	return encStore(t, storeA, stream, recs)
}

func encStore(t testing.TB, store uint64, stream string, recs []batch.Record) []byte {
	t.Helper()
	b, err := batch.Encode(batch.Header{Vehicle: veh, Store: store, Stream: stream, Boot: 2, Compression: batch.Flate}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func open(t testing.TB, root string) *Sink {
	t.Helper()
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func files(t *testing.T, root, stream string) []string {
	t.Helper()
	return storeFiles(t, root, storeA, stream)
}

func storeFiles(t *testing.T, root string, store uint64, stream string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(root, veh, storeDir(store), stream))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// storedFrame is a frame of a segment, as a test sees it.
type storedFrame struct {
	file  string
	r     Range
	flags uint32
	batch []byte
}

// frames lists the frames of store's stream's segments, file by file.
func frames(t *testing.T, root string, store uint64, stream string) []storedFrame {
	t.Helper()
	dir := filepath.Join(root, veh, storeDir(store), stream)
	var out []storedFrame
	for _, name := range storeFiles(t, root, store, stream) {
		if !isSegmentName(name) {
			continue
		}
		end, err := scanSegment(filepath.Join(dir, name), func(fr frame) error {
			out = append(out, storedFrame{name, fr.r, fr.flags, bytes.Clone(fr.batch)})
			return nil
		})
		if err != nil || end.torn || end.damage != nil {
			t.Fatalf("%s: %+v, %v", name, end, err)
		}
	}
	return out
}

func frameRanges(fs []storedFrame) []Range {
	var out []Range
	for _, f := range fs {
		out = append(out, f.r)
	}
	return out
}

// writeOneBatch writes recs as an earlier version did: one file.
func writeOneBatch(t *testing.T, root string, store uint64, stream string, recs []batch.Record) string {
	t.Helper()
	dir := filepath.Join(root, veh, storeDir(store), stream)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fileName(Range{recs[0].Seq, recs[len(recs)-1].Seq}))
	if err := os.WriteFile(path, encStore(t, store, stream, recs), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// scanAll is every record Scan gives, by seq: how often each is stored.
func scanAll(t *testing.T, s *Sink, store uint64, stream string) map[uint64]int {
	t.Helper()
	n := map[uint64]int{}
	if err := s.Scan(veh, store, stream, func(r batch.Record) error { n[r.Seq]++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func ingest(t *testing.T, s *Sink, b []byte, want batch.Status) batch.Ack {
	t.Helper()
	ack, err := s.Ingest(veh, b)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if ack.Status != want {
		t.Fatalf("status %s, want %s", ack.Status, want)
	}
	if _, err := batch.EncodeAck(ack); err != nil {
		t.Errorf("ack does not encode: %v", err)
	}
	return ack
}

func TestDeduplication(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	steps := []struct {
		first, last uint64
		want        batch.Status
		frames      []Range
	}{
		{1, 10, batch.StatusStored, []Range{{1, 10}}},
		{1, 10, batch.StatusDuplicate, nil},
		{3, 7, batch.StatusDuplicate, nil},
		{5, 15, batch.StatusStored, []Range{{11, 15}}},
		{20, 25, batch.StatusStored, []Range{{20, 25}}},
		{1, 30, batch.StatusStored, []Range{{16, 19}, {26, 30}}},
	}
	had := 0
	for _, st := range steps {
		ack := ingest(t, s, enc(t, "inference", data(st.first, st.last)), st.want)
		if ack.FirstSeq != st.first || ack.LastSeq != st.last || ack.Vehicle != veh || ack.Store != storeA || ack.Stream != "inference" || ack.Boot != 2 {
			t.Errorf("ack %+v", ack)
		}
		fs := frames(t, root, storeA, "inference")
		if added := frameRanges(fs[had:]); !reflect.DeepEqual(added, st.frames) {
			t.Errorf("%d-%d wrote %v, want %v", st.first, st.last, added, st.frames)
		}
		had = len(fs)
	}
	if fs := files(t, root, "inference"); len(fs) != 1 {
		t.Errorf("files %v, want one segment", fs)
	}
	got, err := s.ReadStream(veh, "inference", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, data(1, 30)) {
		t.Errorf("read back %d records", len(got))
	}
	if got, _ := s.ReadStream(veh, "inference", 12, 5); len(got) != 5 || got[0].Seq != 13 {
		t.Errorf("read after 12: %d records", len(got))
	}
}

func TestRejected(t *testing.T) {
	s := open(t, t.TempDir())
	good := enc(t, "logs", data(1, 3))
	bad := append([]byte{}, good...)
	bad[len(bad)-1] ^= 0xff
	cases := []struct {
		name      string
		vehicle   string
		b         []byte
		wantVeh   string
		wantStore uint64
		wantLast  uint64
	}{
		{"garbage", veh, []byte("not a batch"), "", 0, 0},
		{"corrupt body", veh, bad, veh, storeA, 3},
		{"other vehicle's topic", "veh-2", good, veh, storeA, 3},
	}
	for _, c := range cases {
		ack, err := s.Ingest(c.vehicle, c.b)
		if !errors.Is(err, ErrRejected) || ack.Status != batch.StatusRejected || ack.Reason == "" || ack.Vehicle != c.wantVeh ||
			ack.Store != c.wantStore || ack.LastSeq != c.wantLast {
			t.Errorf("%s: ack %+v, err %v", c.name, ack, err)
		}
		if _, err := batch.EncodeAck(ack); err != nil {
			t.Errorf("%s: ack does not encode: %v", c.name, err)
		}
	}
	if r := s.Report(); len(r.Vehicles) != 0 {
		t.Errorf("rejected batches left state: %+v", r)
	}
}

func gapScenario(t *testing.T, s *Sink) {
	ingest(t, s, enc(t, "health", data(1, 10)), batch.StatusStored)
	// 11-20 never arrive; 21-30 do, then a gap record at 31 explains
	// 11-15 (evicted) and a drop at 32.
	ingest(t, s, enc(t, "health", data(21, 30)), batch.StatusStored)
	ingest(t, s, enc(t, "health", []batch.Record{
		gapRec(31, record.GapEvictedQuota, 11, 15, 5),
		gapRec(32, record.GapDroppedQueueFull, 0, 0, 7),
		{Seq: 33, Kind: record.KindGap, Payload: []byte{9}},
	}), batch.StatusStored)
	ingest(t, s, enc(t, "logs", data(1, 4)), batch.StatusStored)
}

func wantGapReport() Report {
	return Report{Vehicles: []VehicleReport{{Vehicle: veh, Streams: []StreamReport{
		{
			Stream: "health", Store: storeA, From: 1, HighWater: 33, Through: 15, Records: 23, Files: 1,
			Stored: []Range{{1, 10}, {21, 33}},
			Gaps: []RecordedGap{
				{Seq: 31, Boot: 2, Reason: record.GapEvictedQuota, First: 11, Last: 15, Count: 5},
				{Seq: 32, Boot: 2, Reason: record.GapDroppedQueueFull, Count: 7},
			},
			Evicted:       []Range{{11, 15}},
			Missing:       []Range{{16, 20}},
			BadGapRecords: 1,
		},
		{Stream: "logs", Store: storeA, From: 1, HighWater: 4, Through: 4, Records: 4, Files: 1, Stored: []Range{{1, 4}}},
	}, Stores: []StoreReport{{Store: storeA, Known: true}}}}}
}

func TestReportAndRestart(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	gapScenario(t, s)
	if got, want := s.Report(), wantGapReport(); !reflect.DeepEqual(got, want) {
		t.Fatalf("report\n got %+v\nwant %+v", got, want)
	}

	// A leftover temporary file and a corrupt one-batch file, then a
	// restart.
	dir := filepath.Join(root, veh, storeDir(storeA), "logs")
	os.WriteFile(filepath.Join(dir, ".tmp-x"), []byte("half"), 0o640)
	os.WriteFile(filepath.Join(dir, fileName(Range{5, 6})), []byte("garbage"), 0o640)
	s = open(t, root)
	got := s.Report()
	if len(got.Corrupt) != 1 || !strings.Contains(got.Corrupt[0], fileName(Range{5, 6})) {
		t.Errorf("corrupt: %v", got.Corrupt)
	}
	got.Corrupt = nil
	if want := wantGapReport(); !reflect.DeepEqual(got, want) {
		t.Errorf("after restart\n got %+v\nwant %+v", got, want)
	}
	if fs := files(t, root, "logs"); len(fs) != 2 || !isSegmentName(fs[1]) || fs[0] != fileName(Range{5, 6})+".corrupt" {
		t.Errorf("files %v", fs)
	}
	// State survived: a resent batch is a duplicate; the rest fills the hole.
	ingest(t, s, enc(t, "health", data(21, 25)), batch.StatusDuplicate)
	ingest(t, s, enc(t, "health", data(16, 20)), batch.StatusStored)
	r := s.Report().Vehicles[0].Streams[0]
	if r.Missing != nil || r.Through != 33 {
		t.Errorf("after filling: missing %v, through %d", r.Missing, r.Through)
	}
}

func TestWriteFailureStoresNothing(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	writeHook = func(string) error { return errors.New("disk full") }
	ack, err := s.Ingest(veh, enc(t, "logs", data(1, 5)))
	writeHook = nil
	if err == nil || errors.Is(err, ErrRejected) || ack != (batch.Ack{}) {
		t.Fatalf("ack %+v, err %v", ack, err)
	}
	if fs := files(t, root, "logs"); len(fs) != 0 {
		t.Errorf("files left: %v", fs)
	}
	ingest(t, s, enc(t, "logs", data(1, 5)), batch.StatusStored)

	// A write to the segment fails: nothing of it stays, the segment is
	// abandoned, and the resend goes to a new one.
	writeHook = func(string) error { return errors.New("disk full") }
	ack, err = s.Ingest(veh, enc(t, "logs", data(6, 9)))
	writeHook = nil
	if err == nil || ack != (batch.Ack{}) {
		t.Fatalf("ack %+v, err %v", ack, err)
	}
	ingest(t, s, enc(t, "logs", data(6, 9)), batch.StatusStored)
	fs := frames(t, root, storeA, "logs")
	if got := frameRanges(fs); !reflect.DeepEqual(got, []Range{{1, 5}, {6, 9}}) || fs[0].file == fs[1].file {
		t.Errorf("frames %+v", fs)
	}
	if r := s.Report().Vehicles[0].Streams[0]; r.Files != 2 || r.Records != 9 {
		t.Errorf("report %+v", r)
	}
}

func TestConcurrentReplicas(t *testing.T) {
	root := t.TempDir()
	// Two sinks on one tree stand for two replicas that share nothing.
	a, b := open(t, root), open(t, root)
	var batches [][]byte
	for _, stream := range []string{"inference", "logs"} {
		for first := uint64(1); first <= 200; first += 7 {
			batches = append(batches, enc(t, stream, data(first, first+11)))
		}
	}
	var wg gosync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if w%2 == 1 {
				s = b
			}
			for i := range batches {
				b := batches[(i+w*5)%len(batches)]
				ack, err := s.Ingest(veh, b)
				if err != nil || (ack.Status != batch.StatusStored && ack.Status != batch.StatusDuplicate) {
					t.Errorf("ack %+v, %v", ack, err)
				}
				_ = s.Report()
			}
		}()
	}
	wg.Wait()
	for _, s := range []*Sink{a, b, open(t, root)} {
		r := s.Report()
		if len(r.Vehicles) != 1 || len(r.Vehicles[0].Streams) != 2 || len(r.Corrupt) != 0 {
			t.Fatalf("report %+v", r)
		}
		for _, st := range r.Vehicles[0].Streams {
			if st.HighWater != 208 || st.Through != 208 || st.Records != 208 || st.Missing != nil {
				t.Errorf("%s: %+v", st.Stream, st)
			}
			got, err := s.ReadStream(veh, st.Stream, 0, 0)
			if err != nil || !reflect.DeepEqual(got, data(1, 208)) {
				t.Errorf("%s: read %d records, %v", st.Stream, len(got), err)
			}
		}
	}
}

func TestRanges(t *testing.T) {
	max := ^uint64(0)
	cases := []struct {
		have    ranges
		add     Range
		want    ranges
		missing Range
		wantM   ranges
	}{
		{nil, Range{5, 9}, ranges{{5, 9}}, Range{1, 10}, ranges{{1, 4}, {10, 10}}},
		{ranges{{1, 3}}, Range{4, 6}, ranges{{1, 6}}, Range{1, 6}, nil},
		{ranges{{1, 3}, {10, 12}}, Range{5, 6}, ranges{{1, 3}, {5, 6}, {10, 12}}, Range{2, 11}, ranges{{4, 4}, {7, 9}}},
		{ranges{{1, 3}, {10, 12}}, Range{2, 11}, ranges{{1, 12}}, Range{13, 20}, ranges{{13, 20}}},
		{ranges{{5, max}}, Range{1, 4}, ranges{{1, max}}, Range{max, max}, nil},
		{ranges{{1, max}}, Range{7, 8}, ranges{{1, max}}, Range{3, 3}, nil},
	}
	for _, c := range cases {
		if got := c.have.add(c.add); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v + %v = %v, want %v", c.have, c.add, got, c.want)
		}
		if got := c.want.missing(c.missing); !reflect.DeepEqual(got, c.wantM) {
			t.Errorf("%v missing in %v = %v, want %v", c.want, c.missing, got, c.wantM)
		}
	}
	for _, id := range []uint64{1, storeA, max} {
		if got, ok := parseStoreDir(storeDir(id)); !ok || got != id || len(storeDir(id)) != 16 {
			t.Errorf("store dir %q: %016x, %v", storeDir(id), got, ok)
		}
	}
	for _, bad := range []string{"0000000000000000", "A1B2C3D4E5F60718", "a1b2c3d4e5f6071", "a1b2c3d4e5f607189", "+1b2c3d4e5f60718", "0x1b2c3d4e5f6071", "inference"} {
		if _, ok := parseStoreDir(bad); ok {
			t.Errorf("store dir %q parsed", bad)
		}
	}
	if n, ok := parseFileName(fileName(Range{3, 1 << 40})); !ok || n != (Range{3, 1 << 40}) {
		t.Errorf("file name round trip: %v %v", n, ok)
	}
	for _, bad := range []string{"x.batch", fileName(Range{5, 4}), fileName(Range{0, 4}), "00000000000000000001-00000000000000000002.batc"} {
		if _, ok := parseFileName(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// dataOf is data(first, last) with payloads that say which store sent
// them.
func dataOf(store uint64, first, last uint64) []batch.Record {
	recs := data(first, last)
	for i := range recs {
		recs[i].Payload = fmt.Appendf(nil, "store %016x record %d", store, recs[i].Seq)
	}
	return recs
}

// TestNewStoreIncarnation is the case of a vehicle whose store was moved
// aside as unreadable and started afresh: the new store's sequence
// numbers restart at 1, under a new store id, and its records are new
// ones, not duplicates of the old store's.
func TestNewStoreIncarnation(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	// storeB sorts before storeA, although it came later: the report
	// orders incarnations by id.
	const storeB uint64 = 0x00000000000000b2
	for first := uint64(1); first <= 100; first += 10 {
		ingest(t, s, encStore(t, storeA, "inference", dataOf(storeA, first, first+9)), batch.StatusStored)
	}
	ingest(t, s, encStore(t, storeA, "logs", dataOf(storeA, 1, 3)), batch.StatusStored)
	for first := uint64(1); first <= 50; first += 10 {
		ack := ingest(t, s, encStore(t, storeB, "inference", dataOf(storeB, first, first+9)), batch.StatusStored)
		if ack.Store != storeB || ack.FirstSeq != first {
			t.Errorf("ack %+v", ack)
		}
	}
	ingest(t, s, encStore(t, storeB, "events", dataOf(storeB, 1, 2)), batch.StatusStored)

	want := Report{Vehicles: []VehicleReport{{Vehicle: veh, Streams: []StreamReport{
		{Stream: "events", Store: storeB, From: 1, HighWater: 2, Through: 2, Records: 2, Files: 1, Stored: []Range{{1, 2}}},
		{Stream: "inference", Store: storeB, From: 1, HighWater: 50, Through: 50, Records: 50, Files: 1, Stored: []Range{{1, 50}}},
		{Stream: "inference", Store: storeA, From: 1, HighWater: 100, Through: 100, Records: 100, Files: 1, Stored: []Range{{1, 100}}},
		{Stream: "logs", Store: storeA, From: 1, HighWater: 3, Through: 3, Records: 3, Files: 1, Stored: []Range{{1, 3}}},
	}, Stores: []StoreReport{{Store: storeB, Known: true}, {Store: storeA, Known: true}}}}}
	check := func(s *Sink, when string) {
		t.Helper()
		if got := s.Report(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: report\n got %+v\nwant %+v", when, got, want)
		}
		for _, c := range []struct {
			store uint64
			last  uint64
		}{{storeA, 100}, {storeB, 50}} {
			got, err := s.ReadStore(veh, c.store, "inference", 0, 0)
			if err != nil || !reflect.DeepEqual(got, dataOf(c.store, 1, c.last)) {
				t.Errorf("%s: store %016x: read %d records, %v", when, c.store, len(got), err)
			}
		}
		if got, err := s.ReadStore(veh, storeB, "inference", 45, 3); err != nil || !reflect.DeepEqual(got, dataOf(storeB, 46, 48)) {
			t.Errorf("%s: store B after 45: %d records, %v", when, len(got), err)
		}
		if got, err := s.ReadStore(veh, storeB, "logs", 0, 0); err != nil || got != nil {
			t.Errorf("%s: store B's logs: %d records, %v", when, len(got), err)
		}
		// ReadStream reads a stream only one store has sent, and refuses
		// one with several.
		if got, err := s.ReadStream(veh, "inference", 0, 0); !errors.Is(err, ErrSeveralStores) || got != nil {
			t.Errorf("%s: ReadStream of two stores' stream: %d records, %v", when, len(got), err)
		}
		if got, err := s.ReadStream(veh, "logs", 0, 0); err != nil || !reflect.DeepEqual(got, dataOf(storeA, 1, 3)) {
			t.Errorf("%s: ReadStream(logs): %d records, %v", when, len(got), err)
		}
		if got, err := s.ReadStream(veh, "events", 0, 0); err != nil || !reflect.DeepEqual(got, dataOf(storeB, 1, 2)) {
			t.Errorf("%s: ReadStream(events): %d records, %v", when, len(got), err)
		}
		if got, err := s.ReadStream(veh, "health", 0, 0); err != nil || got != nil {
			t.Errorf("%s: ReadStream(health): %d records, %v", when, len(got), err)
		}
	}
	check(s, "before restart")
	if fs := frames(t, root, storeB, "inference"); len(fs) != 5 || fs[0].r != (Range{1, 10}) {
		t.Errorf("store B's frames %+v", fs)
	}
	if fs := frames(t, root, 0xb2, "events"); len(fs) != 1 || fs[0].r != (Range{1, 2}) {
		t.Errorf("store B's events %+v", fs)
	}

	// A file of store A's put in store B's directory is corrupt: Open
	// checks the header's store against the directory. A directory that
	// is not a store id is ignored.
	for _, junk := range []string{"inference", "00000000000000B2", "0000000000000000"} {
		dir := filepath.Join(root, veh, junk, "inference")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fileName(Range{1, 10})), encStore(t, storeA, "inference", dataOf(storeA, 1, 10)), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	misplaced := filepath.Join(root, veh, storeDir(storeB), "inference", fileName(Range{51, 60}))
	if err := os.WriteFile(misplaced, encStore(t, storeA, "inference", dataOf(storeA, 51, 60)), 0o640); err != nil {
		t.Fatal(err)
	}
	s = open(t, root)
	got := s.Report()
	if len(got.Corrupt) != 1 || !strings.Contains(got.Corrupt[0], misplaced) {
		t.Errorf("corrupt: %v", got.Corrupt)
	}
	s.mu.Lock()
	s.corrupt = nil
	s.mu.Unlock()
	check(s, "after restart")

	// Resends are duplicates of their own store's records only.
	ingest(t, s, encStore(t, storeA, "inference", dataOf(storeA, 41, 60)), batch.StatusDuplicate)
	ingest(t, s, encStore(t, storeB, "inference", dataOf(storeB, 1, 10)), batch.StatusDuplicate)
	ack := ingest(t, s, encStore(t, storeB, "inference", dataOf(storeB, 41, 60)), batch.StatusStored)
	if ack.Store != storeB {
		t.Errorf("ack %+v", ack)
	}
	if got, err := s.ReadStore(veh, storeB, "inference", 0, 0); err != nil || !reflect.DeepEqual(got, dataOf(storeB, 1, 60)) {
		t.Errorf("store B after 51-60: %d records, %v", len(got), err)
	}
	if got, err := s.ReadStore(veh, storeA, "inference", 0, 0); err != nil || !reflect.DeepEqual(got, dataOf(storeA, 1, 100)) {
		t.Errorf("store A after store B's 51-60: %d records, %v", len(got), err)
	}
}

// TestStoredAsReceived: a batch whose records are all new is framed byte
// for byte, whatever its compression; only the new sub-ranges of an
// overlapping batch are encoded afresh. Either kind of frame is read
// back, recovered and reported alike.
func TestStoredAsReceived(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	encWith := func(c batch.Compression, recs []batch.Record) []byte {
		b, err := batch.Encode(batch.Header{Vehicle: veh, Store: storeA, Stream: "inference", Boot: 5, Compression: c}, recs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	steps := []struct {
		raw      []byte
		want     batch.Status
		frames   []Range
		verbatim bool
	}{
		{encWith(batch.Flate, data(1, 40)), batch.StatusStored, []Range{{1, 40}}, true},
		{encWith(batch.None, data(41, 50)), batch.StatusStored, []Range{{41, 50}}, true},
		{encWith(batch.Flate, data(61, 70)), batch.StatusStored, []Range{{61, 70}}, true},
		{encWith(batch.None, data(45, 80)), batch.StatusStored, []Range{{51, 60}, {71, 80}}, false},
		{encWith(batch.Flate, data(1, 80)), batch.StatusDuplicate, nil, false},
	}
	had := 0
	for i, st := range steps {
		raw := append([]byte(nil), st.raw...)
		ingest(t, s, raw, st.want)
		clear(raw) // the caller may reuse its buffer once Ingest returns
		fs := frames(t, root, storeA, "inference")
		added := fs[had:]
		had = len(fs)
		if got := frameRanges(added); !reflect.DeepEqual(got, st.frames) {
			t.Errorf("step %d: frames %v, want %v", i, got, st.frames)
		}
		for _, f := range added {
			if st.verbatim && string(f.batch) != string(st.raw) {
				t.Errorf("step %d: %v is not the batch as received", i, f.r)
			}
			h, recs, err := batch.Decode(f.batch)
			if err != nil || h.FirstSeq != f.r.First || h.LastSeq != f.r.Last || h.Vehicle != veh || h.Store != storeA || h.Stream != "inference" ||
				h.Boot != 5 || !reflect.DeepEqual(recs, data(f.r.First, f.r.Last)) || f.flags != 0 {
				t.Errorf("step %d: frame %v holds %+v, %d records, %v", i, f.r, h, len(recs), err)
			}
			if !st.verbatim && h.Compression != batch.Flate {
				t.Errorf("step %d: re-encoded %v with %v", i, f.r, h.Compression)
			}
		}
	}
	want := Report{Vehicles: []VehicleReport{{Vehicle: veh, Streams: []StreamReport{
		{Stream: "inference", Store: storeA, From: 1, HighWater: 80, Through: 80, Records: 80, Files: 1, Stored: []Range{{1, 80}}},
	}, Stores: []StoreReport{{Store: storeA, Known: true}}}}}
	for _, s := range []*Sink{s, open(t, root)} {
		if got := s.Report(); !reflect.DeepEqual(got, want) {
			t.Errorf("report\n got %+v\nwant %+v", got, want)
		}
		if got, err := s.ReadStream(veh, "inference", 0, 0); err != nil || !reflect.DeepEqual(got, data(1, 80)) {
			t.Errorf("read back %d records, %v", len(got), err)
		}
		if got, err := s.ReadStore(veh, storeA, "inference", 42, 10); err != nil || !reflect.DeepEqual(got, data(43, 52)) {
			t.Errorf("read after 42: %d records, %v", len(got), err)
		}
	}
}

// TestDirectoryRemoved: the sink makes a stream's directories once, and
// again if they were removed behind its back; the segment it was writing
// went with them, and the next batch starts a new one.
func TestDirectoryRemoved(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ingest(t, s, enc(t, "logs", data(1, 5)), batch.StatusStored)
	if err := os.RemoveAll(filepath.Join(root, veh)); err != nil {
		t.Fatal(err)
	}
	ingest(t, s, enc(t, "logs", data(6, 10)), batch.StatusStored)
	if fs := frames(t, root, storeA, "logs"); len(fs) != 1 || fs[0].r != (Range{6, 10}) {
		t.Errorf("frames %+v", fs)
	}
	// A segment removed alone: likewise.
	if err := os.Remove(filepath.Join(root, veh, storeDir(storeA), "logs", files(t, root, "logs")[0])); err != nil {
		t.Fatal(err)
	}
	ingest(t, s, enc(t, "logs", data(11, 12)), batch.StatusStored)
	if fs := frames(t, root, storeA, "logs"); len(fs) != 1 || fs[0].r != (Range{11, 12}) {
		t.Errorf("frames %+v", fs)
	}
}
