package sink

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
)

// setCrash installs a crash hook for the rest of the test.
func setCrash(t *testing.T, f func(step string, n int) (int, bool)) {
	crash = f
	t.Cleanup(func() { crash = nil })
}

// A segment is rolled by age and by size; files are counted in the
// report, and the rolled segments read back as one stream.
func TestSegmentRoll(t *testing.T) {
	root := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	one := len(enc(t, "inference", data(1, 10))) + frameHeaderLen
	s, err := Open(root, Options{Clock: clk, SegmentAge: time.Hour, SegmentBytes: int64(len(segMagic) + 3*one)})
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(1)
	send := func() {
		ingest(t, s, enc(t, "inference", data(seq, seq+9)), batch.StatusStored)
		seq += 10
	}
	send()
	send()
	clk.Advance(30 * time.Minute)
	send() // 3 in the first segment: full
	send() // a second, started at 00:30
	clk.Advance(time.Hour)
	send() // the second is an hour old: a third, at 01:30
	send()
	fs := files(t, root, "inference")
	if len(fs) != 3 {
		t.Fatalf("files %v, want 3", fs)
	}
	perFile := map[string]int{}
	for _, f := range frames(t, root, storeA, "inference") {
		perFile[f.file]++
	}
	if perFile[fs[0]] != 3 || perFile[fs[1]] != 1 || perFile[fs[2]] != 2 {
		t.Errorf("frames per file %v", perFile)
	}
	if !strings.HasPrefix(fs[0], "20260501T000000Z-") || !strings.HasPrefix(fs[1], "20260501T003000Z-") || !strings.HasPrefix(fs[2], "20260501T013000Z-") {
		t.Errorf("names %v", fs)
	}
	for _, s := range []*Sink{s, open(t, root)} {
		if r := s.Report().Vehicles[0].Streams[0]; r.Files != 3 || r.Records != 60 || r.Through != 60 {
			t.Errorf("report %+v", r)
		}
		if got, err := s.ReadStore(veh, storeA, "inference", 0, 0); err != nil || !reflect.DeepEqual(got, data(1, 60)) {
			t.Errorf("read %d, %v", len(got), err)
		}
	}
	// A restarted sink never appends to its earlier segments.
	s2 := open(t, root)
	ingest(t, s2, enc(t, "inference", data(61, 62)), batch.StatusStored)
	if fs := files(t, root, "inference"); len(fs) != 4 {
		t.Errorf("files %v, want 4", fs)
	}
}

// A crash in the middle of an append (part of the frames written, none
// synced, no ack) loses nothing acknowledged: the restarted sink reads
// the segment up to the torn frame, reports no damage, has not stored
// the torn batch, and stores its resend once.
func TestCrashMidAppend(t *testing.T) {
	for _, keep := range []int{1, frameHeaderLen - 1, frameHeaderLen, frameHeaderLen + 7, -2} {
		t.Run("", func(t *testing.T) {
			root := t.TempDir()
			s := open(t, root)
			ingest(t, s, enc(t, "health", data(1, 10)), batch.StatusStored)
			ingest(t, s, enc(t, "health", []batch.Record{gapRec(11, record.GapEvictedQuota, 5, 6, 2)}), batch.StatusStored)
			torn := enc(t, "health", data(12, 20))
			setCrash(t, func(step string, n int) (int, bool) {
				if step != crashAppend {
					return 0, false
				}
				if keep < 0 {
					return n + keep, true // all but the last bytes
				}
				return keep, true
			})
			if _, err := s.Ingest(veh, torn); err == nil {
				t.Fatal("the crashed append returned no error")
			}
			crash = nil

			s = open(t, root)
			rep := s.Report()
			if len(rep.Corrupt) != 0 {
				t.Errorf("a torn tail reported as damage: %v", rep.Corrupt)
			}
			r := rep.Vehicles[0].Streams[0]
			if !reflect.DeepEqual(r.Stored, []Range{{1, 11}}) || len(r.Gaps) != 1 || r.Gaps[0].Seq != 11 {
				t.Errorf("after the crash: %+v", r)
			}
			ingest(t, s, torn, batch.StatusStored)
			ingest(t, s, torn, batch.StatusDuplicate)
			s = open(t, root)
			if r := s.Report().Vehicles[0].Streams[0]; r.Records != 20 || r.HighWater != 20 {
				t.Errorf("after the resend: %+v", r)
			}
			for seq, n := range scanAll(t, s, storeA, "health") {
				if n != 1 {
					t.Errorf("seq %d stored %d times", seq, n)
				}
			}
			if n := len(scanAll(t, s, storeA, "health")); n != 20 {
				t.Errorf("%d records stored", n)
			}
		})
	}
}

// A frame damaged in the middle of a segment: Open reports it with the
// file and the offset, reads the frames before it, and counts the
// records from there on as missing; their resend stores them again.
func TestDamagedSegment(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	for first := uint64(1); first <= 30; first += 10 {
		ingest(t, s, enc(t, "logs", data(first, first+9)), batch.StatusStored)
	}
	fs := frames(t, root, storeA, "logs")
	path := filepath.Join(root, veh, storeDir(storeA), "logs", fs[1].file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := len(segMagic) + frameHeaderLen + len(fs[0].batch) + frameHeaderLen + 5 // in the second frame's batch
	b[at] ^= 0x40
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	s = open(t, root)
	rep := s.Report()
	if len(rep.Corrupt) != 1 || !strings.Contains(rep.Corrupt[0], path) || !strings.Contains(rep.Corrupt[0], "checksum") {
		t.Errorf("corrupt %v", rep.Corrupt)
	}
	if r := rep.Vehicles[0].Streams[0]; !reflect.DeepEqual(r.Stored, []Range{{1, 10}}) {
		t.Errorf("stored %v", r.Stored)
	}
	if got, err := s.ReadStore(veh, storeA, "logs", 0, 0); err != nil || !reflect.DeepEqual(got, data(1, 10)) {
		t.Errorf("read %d, %v", len(got), err)
	}
	ingest(t, s, enc(t, "logs", data(1, 30)), batch.StatusStored)
	if got, err := s.ReadStore(veh, storeA, "logs", 0, 0); err != nil || !reflect.DeepEqual(got, data(1, 30)) {
		t.Errorf("read after the resend %d, %v", len(got), err)
	}
}

// legacyScenario writes what an earlier version left: one file per
// range, overlapping ones from two replicas, gap records, two stores;
// and returns the report and records they make.
func legacyScenario(t *testing.T, root string) {
	t.Helper()
	for first := uint64(1); first <= 200; first += 10 {
		writeOneBatch(t, root, storeA, "inference", data(first, first+9))
	}
	writeOneBatch(t, root, storeA, "inference", data(195, 212)) // a replica's overlapping range
	writeOneBatch(t, root, storeA, "health", data(1, 10))
	writeOneBatch(t, root, storeA, "health", data(21, 30))
	writeOneBatch(t, root, storeA, "health", []batch.Record{
		gapRec(31, record.GapEvictedQuota, 11, 15, 5),
		gapRec(32, record.GapDroppedQueueFull, 0, 0, 7),
	})
	writeOneBatch(t, root, 0xb2, "logs", dataOf(0xb2, 1, 3))
}

// withoutFiles is a report with its file counts zeroed: what compaction
// must keep.
func withoutFiles(r Report) Report {
	for i := range r.Vehicles {
		r.Vehicles[i].Streams = append([]StreamReport(nil), r.Vehicles[i].Streams...)
		for j := range r.Vehicles[i].Streams {
			r.Vehicles[i].Streams[j].Files = 0
		}
	}
	return r
}

// streamOf finds a stream in a report.
func streamOf(r Report, store uint64, stream string) *StreamReport {
	for i := range r.Vehicles {
		for j := range r.Vehicles[i].Streams {
			if sr := &r.Vehicles[i].Streams[j]; sr.Store == store && sr.Stream == stream {
				return sr
			}
		}
	}
	return nil
}

type readBack map[string][]batch.Record

func readAll(t *testing.T, s *Sink) readBack {
	t.Helper()
	out := readBack{}
	for _, c := range []struct {
		store  uint64
		stream string
	}{{storeA, "inference"}, {storeA, "health"}, {0xb2, "logs"}} {
		got, err := s.ReadStore(veh, c.store, c.stream, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		out[c.stream] = got
	}
	return out
}

// checkOnce fails unless every record of the scenario is stored exactly
// once in the files, one-batch files and segments together.
func checkOnce(t *testing.T, s *Sink) {
	t.Helper()
	for _, c := range []struct {
		store  uint64
		stream string
		n      int
	}{{storeA, "inference", 212}, {storeA, "health", 22}, {0xb2, "logs", 3}} {
		got := scanAll(t, s, c.store, c.stream)
		if len(got) != c.n {
			t.Errorf("%s: %d records stored, want %d", c.stream, len(got), c.n)
		}
		for seq, n := range got {
			if n != 1 {
				t.Errorf("%s: seq %d stored %d times", c.stream, seq, n)
			}
		}
	}
}

// oneBatchFiles counts the earlier version's files left in the tree.
func oneBatchFiles(t *testing.T, root string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if _, ok := parseFileName(d.Name()); ok {
				n++
			}
		}
		return nil
	})
	return n
}

// Compact merges an earlier version's one-batch files into segments and
// keeps every record exactly once, the gap records and the reports; a
// resent batch is still a duplicate afterwards.
func TestCompact(t *testing.T) {
	root := t.TempDir()
	legacyScenario(t, root)
	s := open(t, root)
	wantReport, wantRead := withoutFiles(s.Report()), readAll(t, s)
	if r := streamOf(s.Report(), storeA, "inference"); r == nil || r.Files != 21 || r.Records != 212 {
		t.Fatalf("before: %+v", r)
	}
	ingest(t, s, enc(t, "inference", data(213, 220)), batch.StatusStored) // a segment beside the files

	st, err := s.Compact()
	if err != nil {
		t.Fatal(err)
	}
	if st.Streams != 3 || st.Files != 25 || st.Segments != 3 || st.Corrupt != 0 {
		t.Errorf("stats %+v", st)
	}
	if n := oneBatchFiles(t, root); n != 0 {
		t.Errorf("%d one-batch files left", n)
	}
	want := wantReport
	inf := streamOf(want, storeA, "inference")
	inf.HighWater, inf.Through, inf.Records, inf.Stored = 220, 220, 220, []Range{{1, 220}}
	for when, s := range map[string]*Sink{"compacted": s, "reopened": open(t, root)} {
		if got := withoutFiles(s.Report()); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: report\n got %+v\nwant %+v", when, got, want)
		}
		for _, v := range s.Report().Vehicles {
			for _, r := range v.Streams {
				wantFiles := 1
				if r.Stream == "inference" {
					wantFiles = 2 // the compacted one, and the one Ingest wrote
				}
				if r.Files != wantFiles {
					t.Errorf("%s: %s: %d files, want %d", when, r.Stream, r.Files, wantFiles)
				}
			}
		}
		got := readAll(t, s)
		got["inference"] = got["inference"][:212]
		if !reflect.DeepEqual(got, wantRead) {
			t.Errorf("%s: records read back differ", when)
		}
		ingest(t, s, enc(t, "inference", data(5, 60)), batch.StatusDuplicate)
		ingest(t, s, enc(t, "health", data(21, 30)), batch.StatusDuplicate)
	}
	if st, err := s.Compact(); err != nil || st != (CompactStats{}) {
		t.Errorf("a second Compact: %+v, %v", st, err)
	}
}

// A crash at any point of a compaction loses and duplicates nothing: the
// restarted sink reports and reads the same, detects duplicates, and
// the next Compact leaves every record once in the files.
func TestCrashMidCompaction(t *testing.T) {
	type point struct {
		step string
		keep int
	}
	points := []point{
		{crashCompactWrite, 0}, {crashCompactWrite, 5}, {crashCompactWrite, 300}, {crashCompactWrite, -1},
		{crashCompactRenamed, 0},
		{crashCompactRemove, 0}, {crashCompactRemove, 1}, {crashCompactRemove, 7},
	}
	for _, p := range points {
		t.Run(p.step, func(t *testing.T) {
			root := t.TempDir()
			legacyScenario(t, root)
			s := open(t, root)
			wantReport, wantRead := withoutFiles(s.Report()), readAll(t, s)
			crashes := 0
			setCrash(t, func(step string, n int) (int, bool) {
				if step != p.step || crashes > 0 {
					return 0, false
				}
				crashes++
				if p.keep < 0 {
					return n + p.keep, true
				}
				return p.keep, true
			})
			if _, err := s.Compact(); err == nil || crashes != 1 {
				t.Fatalf("Compact: %v after %d crashes", err, crashes)
			}
			crash = nil

			s = open(t, root)
			if got := withoutFiles(s.Report()); !reflect.DeepEqual(got, wantReport) {
				t.Errorf("after the crash: report\n got %+v\nwant %+v", got, wantReport)
			}
			if got := readAll(t, s); !reflect.DeepEqual(got, wantRead) {
				t.Error("after the crash: records read back differ")
			}
			ingest(t, s, enc(t, "inference", data(41, 50)), batch.StatusDuplicate)
			if _, err := s.Compact(); err != nil {
				t.Fatal(err)
			}
			if n := oneBatchFiles(t, root); n != 0 {
				t.Errorf("%d one-batch files left", n)
			}
			checkOnce(t, s)
			s = open(t, root)
			if got := withoutFiles(s.Report()); !reflect.DeepEqual(got, wantReport) {
				t.Errorf("compacted: report\n got %+v\nwant %+v", got, wantReport)
			}
			if got := readAll(t, s); !reflect.DeepEqual(got, wantRead) {
				t.Error("compacted: records read back differ")
			}
			ingest(t, s, enc(t, "inference", data(41, 50)), batch.StatusDuplicate)
		})
	}
}

// TestFleetDayFiles writes one vehicle's day of telemetry at the demo's
// rates, in compressed time (a fake clock; files not synced: this counts
// files, it does not crash), and counts the files: the figure the docs
// give. The demo (make demo, fleet-demo) serves 30 requests a second:
// 30 inference summaries a second, a health reading a second, and a few
// log lines and events; the uploader's live lane sends them as they come,
// in batches of one to two records (the tester's 7,256 files for 12,772
// inference records). Here each stream sends a batch every 5 seconds
// (the count of files does not depend on it, and the test stays short),
// and the inference stream's bytes at the demo's batching are checked
// against the size roll separately: an hour of them stays far below it,
// so the age roll (an hour) decides, and the day is 24 segments a
// stream.
func TestFleetDayFiles(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a day of batches: not in -short mode, nor under the race detector (the code it runs is raced by the other tests)")
	}
	old := syncFile
	syncFile = func(*os.File) error { return nil }
	t.Cleanup(func() { syncFile = old })
	root := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	s, err := Open(root, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	payload := func(n int) []byte { return []byte(strings.Repeat("x", n)) }
	type rate struct {
		stream  string
		perSec  int // records a second; 0: one every `every`
		every   time.Duration
		payload []byte
	}
	rates := []rate{
		{"inference", 30, 0, nil}, // benchSummaries
		{"health", 1, 0, payload(300)},
		{"logs", 5, 0, payload(160)},
		{"events", 0, time.Minute, payload(200)},
	}
	next := map[string]uint64{}
	var bytes int64
	start := time.Now()
	const day, step = 24 * 60 * 60, 5
	for sec := 0; sec < day; sec += step {
		for _, r := range rates {
			n := r.perSec * step
			if n == 0 {
				if sec%int(r.every/time.Second) != 0 {
					continue
				}
				n = 1
			}
			first := next[r.stream] + 1
			var recs []batch.Record
			if r.stream == "inference" {
				recs = batch.FromStorage(benchSummaries(first, n))
			} else {
				for i := range n {
					recs = append(recs, batch.Record{Seq: first + uint64(i), Kind: record.KindData, Boot: 2, Wall: clk.Now(), Payload: r.payload})
				}
			}
			b := enc(t, r.stream, recs)
			bytes += int64(len(b) + frameHeaderLen)
			if _, err := s.Ingest(veh, b); err != nil {
				t.Fatal(err)
			}
			next[r.stream] += uint64(n)
		}
		clk.Advance(step * time.Second)
	}
	nfiles, ndirs := 0, 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != root {
			if d.IsDir() {
				ndirs++
			} else {
				nfiles++
			}
		}
		return nil
	})
	for _, r := range s.Report().Vehicles[0].Streams {
		if r.Files != 24 || r.Records != next[r.Stream] || r.Through != next[r.Stream] {
			t.Errorf("%s: %d files, %d records through %d; want 24 files, %d records", r.Stream, r.Files, r.Records, r.Through, next[r.Stream])
		}
	}
	if nfiles != 4*24 {
		t.Errorf("%d files, want 96", nfiles)
	}

	// The inference stream at the demo's batching: 17 batches a second
	// of 1 or 2 summaries. An hour of it must stay below the size roll.
	two := enc(t, "inference", batch.FromStorage(benchSummaries(1, 2)))
	perHour := int64(17*3600) * int64(len(two)+frameHeaderLen)
	if perHour >= DefaultSegmentBytes {
		t.Errorf("an hour of inference batches of two: %d bytes, over the size roll %d", perHour, int64(DefaultSegmentBytes))
	}
	t.Logf("a day of one vehicle at the demo's rates: %d files in %d directories, %.1f MiB (batches of 5 s); "+
		"an hour of the demo's batches of two inference records: %.1f MiB; written in %v",
		nfiles, ndirs, float64(bytes)/(1<<20), float64(perHour)/(1<<20), time.Since(start).Round(time.Millisecond))
}

// A crash while a new segment is written (its header, or its first
// frame, cut short) leaves a file that readers skip; nothing is stored,
// nothing reported damaged, and the resend is stored once.
func TestCrashMidNewSegment(t *testing.T) {
	for _, keep := range []int{0, 3, len(segMagic), len(segMagic) + frameHeaderLen + 2} {
		root := t.TempDir()
		s := open(t, root)
		setCrash(t, func(step string, n int) (int, bool) { return keep, step == crashAppend })
		if _, err := s.Ingest(veh, enc(t, "events", data(1, 4))); err == nil {
			t.Fatal("the crashed write returned no error")
		}
		crash = nil
		s = open(t, root)
		if rep := s.Report(); len(rep.Corrupt) != 0 || len(rep.Vehicles) != 1 || rep.Vehicles[0].Streams[0].Records != 0 || rep.Vehicles[0].Streams[0].Files != 0 {
			t.Errorf("keep %d: report %+v", keep, rep)
		}
		ingest(t, s, enc(t, "events", data(1, 4)), batch.StatusStored)
		if got := scanAll(t, open(t, root), storeA, "events"); len(got) != 4 {
			t.Errorf("keep %d: stored %v", keep, got)
		}
	}
}

// FuzzScanSegment: whatever a segment file holds, scanning it returns,
// gives only frames whose checksum holds, and stops at the first that
// does not read.
func FuzzScanSegment(f *testing.F) {
	whole := append([]byte(segMagic), appendFrame(nil, Range{1, 4}, 0, []byte("a batch"))...)
	whole = appendFrame(whole, Range{5, 5}, flagGaps, []byte("another"))
	f.Add(whole)
	f.Add(whole[:len(whole)-3])
	f.Add([]byte(segMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "x.seg")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		var last int64
		end, err := scanSegment(path, func(fr frame) error {
			if fr.off < last || fr.r.First == 0 || fr.r.Last < fr.r.First {
				t.Fatalf("frame %+v after %d", fr, last)
			}
			last = fr.off + frameHeaderLen + int64(len(fr.batch))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if end.size != int64(len(b)) || end.end > end.size || (end.torn && end.damage != nil) ||
			(!end.torn && end.damage == nil && end.end != end.size && len(b) >= len(segMagic)) {
			t.Fatalf("end %+v of %d bytes", end, len(b))
		}
	})
}
