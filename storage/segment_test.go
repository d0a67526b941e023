package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
)

// sealRecords runs payloads through a segmenter as one stream's records
// from seq first and returns the sealed segments.
func sealRecords(st *Stream, limit int, first uint64, payloads [][]byte) []segment {
	g := newSegmenter(limit)
	for i, p := range payloads {
		v := make([]byte, headerLen, headerLen+len(p))
		putHeader(v, KindData, 3, time.Duration(i), int64(1000+i))
		g.add(st, first+uint64(i), append(v, p...))
	}
	return g.sealAll([]*Stream{st})
}

func readSegment(t *testing.T, sg segment) []Record {
	t.Helper()
	sv, err := parseSegment(sg.last, sg.value)
	if err != nil {
		t.Fatalf("parse segment [%d, %d]: %v", sg.first, sg.last, err)
	}
	body, err := sv.appendBody(nil)
	if err != nil {
		t.Fatalf("body of segment [%d, %d]: %v", sg.first, sg.last, err)
	}
	var out []Record
	err = sv.parseBody(body, func(r *Record) bool { out = append(out, *r); return true })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSegmentsRoundTrip: records sealed into segments read back as they
// went in; segments break at bucket boundaries and at the size limit;
// text compresses, random bytes are stored as they are, and a stream
// whose segments do not compress stops trying for a while.
func TestSegmentsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	text := make([][]byte, 700)
	for i := range text {
		text[i] = fmt.Appendf(nil, `{"seq":%d,"backend":"primary","latency_us":%d,"outcome":"ok"}`, i, 900+i%50)
	}
	noise := make([][]byte, 300)
	for i := range noise {
		noise[i] = make([]byte, 400)
		for j := range noise[i] {
			noise[i][j] = byte(rng.Uint32())
		}
	}
	for _, tc := range []struct {
		name     string
		payloads [][]byte
		limit    int
		comp     byte
	}{{"text", text, 32 << 10, compressionFlate}, {"noise", noise, 16 << 10, compressionNone}} {
		t.Run(tc.name, func(t *testing.T) {
			st := &Stream{bucketRecords: 256}
			segs := sealRecords(st, tc.limit, 200, tc.payloads)
			next := uint64(200)
			for _, sg := range segs {
				if sg.first != next || sg.first/256 != sg.last/256 {
					t.Fatalf("segment [%d, %d] after %d: not contiguous or spans buckets", sg.first, sg.last, next-1)
				}
				recs := readSegment(t, sg)
				for i, r := range recs {
					seq := sg.first + uint64(i)
					p := tc.payloads[seq-200]
					if r.Seq != seq || !bytes.Equal(r.Payload, p) || r.Kind != KindData || r.Boot != 3 || r.Wall.UnixNano() != int64(1000+seq-200) {
						t.Fatalf("record %d read back as %+v", seq, r)
					}
				}
				// Noise is tried once, saves less than an eighth (the
				// records' headers), and the next ones are not tried.
				if want := tc.comp; sg.value[1] != want && (tc.name == "text" || sg.first != 200) {
					t.Errorf("segment [%d, %d] compression %d, want %d", sg.first, sg.last, sg.value[1], want)
				}
				next = sg.last + 1
			}
			if want := 200 + uint64(len(tc.payloads)); next != want {
				t.Fatalf("segments end at %d, want %d", next-1, want-1)
			}
			if tc.name == "text" && len(segs) != 4 {
				// 700 records from seq 200 cross buckets at 256, 512 and 768;
				// each run is under 32 KiB of text.
				t.Errorf("%d segments, want 4 (bucket boundaries only)", len(segs))
			}
			if tc.name == "noise" && len(segs) < 8 {
				t.Errorf("%d segments of 16 KiB for 300 × 433 bytes", len(segs))
			}
		})
	}
	// The skip: after a segment of noise, the next ones are not even tried.
	st := &Stream{bucketRecords: 1 << 20}
	g := newSegmenter(8 << 10)
	for i, p := range noise[:100] {
		v := make([]byte, headerLen, headerLen+len(p))
		putHeader(v, KindData, 1, 0, 1)
		g.add(st, uint64(i+1), append(v, p...))
	}
	if st.seg.skip == 0 || st.seg.skip >= skipAfterIncompressible {
		t.Errorf("skip = %d after noise, want between 1 and %d", st.seg.skip, skipAfterIncompressible-1)
	}
	// A segment of one record does not compress either, but says nothing
	// about the stream: the next one is still tried.
	st = &Stream{bucketRecords: 1 << 20}
	g = newSegmenter(8 << 10)
	for i, p := range text[:2] {
		v := make([]byte, headerLen, headerLen+len(p))
		putHeader(v, KindData, 1, 0, 1)
		g.add(st, uint64(i+1), append(v, p...))
		g.seal(st)
	}
	if st.seg.skip != 0 {
		t.Errorf("skip = %d after one-record segments", st.seg.skip)
	}
}

// TestSegmentCorruption: any byte flipped in a stored segment makes it
// fail to read with ErrCorruptRecord; none reads back as other records.
func TestSegmentCorruption(t *testing.T) {
	payloads := make([][]byte, 50)
	for i := range payloads {
		payloads[i] = fmt.Appendf(nil, "record %d of a run that compresses", i)
	}
	segs := sealRecords(&Stream{bucketRecords: 1024}, 64<<10, 1, payloads)
	if len(segs) != 1 || segs[0].value[1] != compressionFlate {
		t.Fatalf("want one compressed segment, got %d", len(segs))
	}
	v := segs[0].value
	for i := range v {
		bad := bytes.Clone(v)
		bad[i] ^= 0x10
		sv, err := parseSegment(50, bad)
		if err == nil {
			_, err = sv.appendBody(nil)
		}
		if !errors.Is(err, ErrCorruptRecord) {
			t.Fatalf("byte %d flipped: err = %v, want ErrCorruptRecord", i, err)
		}
	}
	if _, err := parseSegment(50, v[:segmentOverhead-1]); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("a truncated segment: err = %v", err)
	}
	if _, err := parseSegment(0, v); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("a key whose seq is below the segment's first: err = %v", err)
	}
}

// TestCommitWritesSegments: a burst of records goes to Badger as a
// handful of entries, not one per record, and reads back whole, from
// any point.
func TestCommitWritesSegments(t *testing.T) {
	cfg := testConfig(t)
	s := openTest(t, cfg)
	inf := s.Stream(StreamInference)
	var last uint64
	for i := range 4000 {
		last, _ = inf.Append(fmt.Appendf(nil, "summary %d", i))
	}
	if err := inf.WaitDurable(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	keys := 0
	s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(inf.id)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys++
		}
		return nil
	})
	// 4000 records over two buckets of 2048, in a few group commits.
	if keys == 0 || keys > 40 {
		t.Errorf("%d record keys for 4000 records", keys)
	}
	t.Logf("%d records in %d segments", last, keys)
	for _, after := range []uint64{0, 1, 1000, 2046, 2047, 2048, 3998, 3999} {
		recs, err := s.Read(StreamInference, after, 3, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := min(3, int(last-after))
		if len(recs) != want {
			t.Fatalf("Read after %d: %d records, want %d", after, len(recs), want)
		}
		for i, r := range recs {
			if r.Seq != after+1+uint64(i) || string(r.Payload) != fmt.Sprintf("summary %d", after+uint64(i)) || r.Stream != StreamInference {
				t.Fatalf("Read after %d: record %d is %d %q", after, i, r.Seq, r.Payload)
			}
		}
	}
	if recs, _ := s.Read(StreamInference, 0, 5000, 90); len(recs) != 10 {
		t.Errorf("Read with maxBytes 90: %d records of 9 bytes, want 10", len(recs))
	}
}

// TestOpenFormatOne: a store written with one record per key (format 1)
// opens, reads its records, takes new ones in segments after them, and
// is marked format 2.
func TestOpenFormatOne(t *testing.T) {
	cfg := testConfig(t)
	s := openTest(t, cfg)
	id := s.Stream(StreamHealth).id
	s.Close(context.Background())

	db := rawBadger(t, cfg)
	err := db.Update(func(txn *badger.Txn) error {
		for seq := uint64(1); seq <= 300; seq++ {
			v := encodeRecord(KindData, 1, time.Duration(seq), 5000+int64(seq), fmt.Appendf(nil, "old %d", seq))
			if err := txn.Set(appendRecordKey(nil, id, 512, seq), v); err != nil {
				return err
			}
		}
		if err := txn.Set(idKey(prefixLast, id), u64(300)); err != nil {
			return err
		}
		return txn.Set(keyFormat, u64(formatOneRecordPerKey))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s2, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open a format-1 store: %v", err)
	}
	defer s2.Close(context.Background())
	h := s2.Stream(StreamHealth)
	seq, ok := h.Append([]byte("new"))
	if !ok || seq != 301 {
		t.Fatalf("Append after the old records = %d, %v; want 301", seq, ok)
	}
	if err := h.WaitDurable(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, s2, StreamHealth)
	if len(recs) != 301 {
		t.Fatalf("%d records, want 301", len(recs))
	}
	for i, r := range recs[:300] {
		if r.Seq != uint64(i+1) || string(r.Payload) != fmt.Sprintf("old %d", i+1) || r.Wall.UnixNano() != 5000+int64(i+1) {
			t.Fatalf("old record %d read as %d %q", i+1, r.Seq, r.Payload)
		}
	}
	if string(recs[300].Payload) != "new" {
		t.Errorf("new record %q", recs[300].Payload)
	}
	for _, st := range s2.Stats().Streams {
		if st.Name == StreamHealth && st.Backlog.Records != 301 {
			t.Errorf("health backlog %d records, want 301", st.Backlog.Records)
		}
	}
	var format uint64
	s2.db.View(func(txn *badger.Txn) error { return getU64Key(txn, keyFormat, &format) })
	if format != formatVersion {
		t.Errorf("format marker %d after Open, want %d", format, formatVersion)
	}
}

// TestReadSegmentsAsBatch: the store's segments, read as they are stored
// and packed into a telemetry batch without decoding them, decode to
// exactly the records Read returns.
func TestReadSegmentsAsBatch(t *testing.T) {
	s := openTest(t, testConfig(t))
	inf := s.Stream(StreamInference)
	rng := rand.New(rand.NewPCG(5, 6))
	var last uint64
	for i := range 3000 {
		p := fmt.Appendf(nil, `{"i":%d,"latency_us":%d}`, i, rng.IntN(2000))
		if i%3 == 0 {
			p = binary.BigEndian.AppendUint64(p, rng.Uint64()) // some noise
		}
		last, _ = inf.Append(p)
	}
	if err := inf.WaitDurable(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	segs, err := s.ReadSegments(StreamInference, 0, 1<<20)
	if err != nil || len(segs) == 0 || segs[0].First != 1 {
		t.Fatalf("ReadSegments after 0: %d segments, %v", len(segs), err)
	}
	if few, _ := s.ReadSegments(StreamInference, 0, 1); len(few) != 1 {
		t.Errorf("ReadSegments with maxBytes 1: %d segments, want 1", len(few))
	}
	// VisitSegments hands out the same segments, stops when told to and
	// returns fn's error.
	var seen int
	err = s.VisitSegments(StreamInference, 0, func(sg record.Segment) (bool, error) {
		if sg.First != segs[seen].First || sg.Last != segs[seen].Last || !bytes.Equal(sg.Stored, segs[seen].Stored) {
			t.Errorf("visited segment %d: [%d, %d], read [%d, %d]", seen, sg.First, sg.Last, segs[seen].First, segs[seen].Last)
		}
		seen++
		return seen < 2, nil
	})
	if err != nil || seen != min(2, len(segs)) {
		t.Errorf("VisitSegments told to stop after 2: visited %d, %v", seen, err)
	}
	boom := errors.New("boom")
	if err := s.VisitSegments(StreamInference, 0, func(record.Segment) (bool, error) { return true, boom }); !errors.Is(err, boom) {
		t.Errorf("VisitSegments with a failing fn: %v, want it wrapped", err)
	}
	if mid, _ := s.ReadSegments(StreamInference, 2500, 1<<20); len(mid) == 0 || mid[0].First > 2501 || mid[0].Last < 2501 {
		t.Errorf("ReadSegments after 2500 starts with %+v", mid)
	}
	if none, err := s.ReadSegments(StreamInference, last, 1<<20); len(none) != 0 || err != nil {
		t.Errorf("ReadSegments after the last: %d, %v", len(none), err)
	}
	p := batch.Packer{Vehicle: "veh-1", Store: s.StoreID(), Compression: batch.Flate}
	var after uint64
	for after < last {
		out, h, n, err := p.PackSegments(StreamInference, segs)
		if err != nil || n == 0 {
			t.Fatalf("PackSegments after %d: %d, %v", after, n, err)
		}
		_, got, err := batch.Decode(out)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		want, err := s.Read(StreamInference, after, int(h.Count), 1<<30)
		if err != nil || len(want) != len(got) {
			t.Fatalf("Read after %d: %d records, the batch %d (%v)", after, len(want), len(got), err)
		}
		for i := range want {
			if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Payload, want[i].Payload) || got[i].Wall.UnixNano() != want[i].Wall.UnixNano() || got[i].Mono != want[i].Mono || got[i].Boot != want[i].Boot {
				t.Fatalf("record %d: batch %+v, Read %+v", want[i].Seq, got[i], want[i])
			}
		}
		after = h.LastSeq
		segs = segs[n:]
		if len(segs) == 0 && after < last {
			segs, _ = s.ReadSegments(StreamInference, after, 1<<20)
		}
	}
}
