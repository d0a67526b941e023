package batch

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	mrand "math/rand/v2"
	"testing"

	"github.com/vigil-av/vigil/storage/record"
)

// segmentOf makes a segment of rs as the store seals one: the body in the
// wire layout, sync-flushed deflate without a final block when compress.
func segmentOf(rs []Record, compress bool) record.Segment {
	b := body(rs...)
	s := record.Segment{First: rs[0].Seq, Last: rs[len(rs)-1].Seq, BodyLen: len(b), BodyCRC: crc32.Checksum(b, castagnoli), Stored: b}
	if compress {
		s.Flate, s.Stored = true, deflated(b, 1, len(b)+1, false) // flushed, not finished
	}
	return s
}

func noise(seed uint64) func(int) []byte {
	rng := mrand.New(mrand.NewPCG(seed, 1))
	return func(int) []byte {
		p := make([]byte, 150)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
}

// TestPackSegments: segments, compressed and not, go into one batch as
// they are stored; Decode reads back every record, and the header's
// range, count and lengths are the segments'.
func TestPackSegments(t *testing.T) {
	a := recs(11, 200, text)
	b := recs(211, 70, noise(1))
	c := recs(281, 300, text)
	segs := []record.Segment{segmentOf(a, true), segmentOf(b, false), segmentOf(c, true)}
	p := Packer{Vehicle: "veh-1", Store: store, Boot: 4, Compression: Flate}
	out, h, n, err := p.PackSegments("inference", segs)
	if err != nil || n != 3 {
		t.Fatalf("PackSegments: %d segments, %v", n, err)
	}
	got, rs, err := Decode(out)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got.FirstSeq != 11 || got.LastSeq != 580 || got.Count != 570 || got != h || got.Compression != Flate || got.Store != store || got.Boot != 4 {
		t.Errorf("header %+v, PackSegments said %+v", got, h)
	}
	want := append(append(append([]Record(nil), a...), b...), c...)
	if len(rs) != len(want) {
		t.Fatalf("%d records, want %d", len(rs), len(want))
	}
	for i := range want {
		if rs[i].Seq != want[i].Seq || !bytes.Equal(rs[i].Payload, want[i].Payload) || !rs[i].Wall.Equal(want[i].Wall) || rs[i].Mono != want[i].Mono {
			t.Fatalf("record %d: %+v, want %+v", i, rs[i], want[i])
		}
	}
	// An uncompressed segment longer than a stored block's 65535 bytes.
	big := recs(1, 600, noise(2))
	out, _, n, err = p.PackSegments("inference", []record.Segment{segmentOf(big, false)})
	if err != nil || n != 1 {
		t.Fatalf("a 107 KB uncompressed segment: %d, %v", n, err)
	}
	if _, rs, err := Decode(out); err != nil || len(rs) != 600 {
		t.Fatalf("Decode: %d records, %v", len(rs), err)
	}
}

// TestPackSegmentsLimits: a batch takes whole segments up to the payload,
// body and record limits and stops at a hole; a first segment that fits
// nowhere gives no batch; bad segments are refused.
func TestPackSegmentsLimits(t *testing.T) {
	var segs []record.Segment
	for i := range 10 {
		segs = append(segs, segmentOf(recs(uint64(1+i*100), 100, noise(uint64(i))), false))
	}
	p := Packer{Vehicle: "veh-1", Store: store, Compression: Flate, MaxPayload: 64 << 10}
	out, h, n, err := p.PackSegments("logs", segs)
	// Each is 100 × 183 bytes uncompressed: three fit in 64 KiB.
	if err != nil || n != 3 || h.LastSeq != 300 || len(out) > 64<<10 {
		t.Fatalf("64 KiB payload: %d segments through %d, %d bytes, %v", n, h.LastSeq, len(out), err)
	}
	p.MaxPayload, p.MaxRecords = 0, 250
	if _, h, n, _ := p.PackSegments("logs", segs); n != 2 || h.Count != 200 {
		t.Errorf("MaxRecords 250: %d segments, %d records", n, h.Count)
	}
	p.MaxRecords, p.MaxBody = 0, 40000
	if _, _, n, _ := p.PackSegments("logs", segs); n != 2 {
		t.Errorf("MaxBody 40000: %d segments", n)
	}
	p.MaxBody = 0
	holed := []record.Segment{segs[0], segs[2], segs[3]}
	if _, h, n, _ := p.PackSegments("logs", holed); n != 1 || h.LastSeq != 100 {
		t.Errorf("a hole after the first: %d segments through %d", n, h.LastSeq)
	}
	p.MaxPayload = 10 << 10
	if out, _, n, err := p.PackSegments("logs", segs); out != nil || n != 0 || err != nil {
		t.Errorf("a first segment over the payload: %d segments, %v", n, err)
	}
	p.MaxPayload = 0
	for _, bad := range []record.Segment{{First: 0, Last: 3, BodyLen: 200}, {First: 5, Last: 4, BodyLen: 200}, {First: 1, Last: 10, BodyLen: 20}} {
		if _, _, _, err := p.PackSegments("logs", []record.Segment{bad}); !errors.Is(err, ErrSequence) {
			t.Errorf("segment %+v: err = %v, want ErrSequence", bad, err)
		}
	}
	if _, _, _, err := (Packer{Vehicle: "veh-1", Store: store}).PackSegments("logs", segs); !errors.Is(err, ErrInvalid) {
		t.Errorf("without Flate: err = %v, want ErrInvalid", err)
	}
	if _, _, _, err := p.PackSegments("logs", nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("no segments: err = %v, want ErrEmpty", err)
	}
}

// TestPackSegmentsCorrupt: a segment whose stored bytes or checksum do
// not match its body gives a batch the ingester refuses.
func TestPackSegmentsCorrupt(t *testing.T) {
	p := Packer{Vehicle: "veh-1", Store: store, Compression: Flate}
	for name, spoil := range map[string]func(*record.Segment){
		"checksum":    func(s *record.Segment) { s.BodyCRC ^= 1 },
		"stored":      func(s *record.Segment) { s.Stored = bytes.Clone(s.Stored); s.Stored[len(s.Stored)/2] ^= 0x40 },
		"body length": func(s *record.Segment) { s.BodyLen += 33 },
	} {
		s := segmentOf(recs(1, 100, text), true)
		spoil(&s)
		out, _, n, err := p.PackSegments("inference", []record.Segment{s})
		if err != nil || n != 1 {
			t.Fatalf("%s: %d, %v", name, n, err)
		}
		if _, _, err := Decode(out); err == nil {
			t.Errorf("%s spoiled: the batch decodes", name)
		}
	}
}

// segReader is a Reader with segments, over the same records.
type segReader struct {
	fakeReader
	segs []record.Segment
}

func (r segReader) VisitSegments(stream string, after uint64, fn func(record.Segment) (bool, error)) error {
	for _, s := range r.segs {
		if s.Last <= after {
			continue
		}
		// The store hands out bytes that are its own only during fn:
		// a packer that kept them would see them overwritten.
		s.Stored = bytes.Clone(s.Stored)
		more, err := fn(s)
		clear(s.Stored)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// TestNextSegments: Next sends stored segments as they are when they
// begin right after the cursor and hold enough records each; otherwise it
// packs the records afresh. Either way the batches carry every record.
func TestNextSegments(t *testing.T) {
	all := recs(1, 1000, text)
	var segs []record.Segment
	for i := 0; i < 1000; i += 250 {
		segs = append(segs, segmentOf(all[i:i+250], true))
	}
	var storageRecords []record.Record
	for _, r := range all {
		storageRecords = append(storageRecords, r.Storage("inference"))
	}
	r := segReader{fakeReader: storageRecords, segs: segs}
	p := Packer{Vehicle: "veh-1", Store: store, Compression: Flate}
	for _, tc := range []struct {
		after     uint64
		asStored  bool
		wantFirst uint64
	}{{0, true, 1}, {250, true, 251}, {100, false, 101}, {999, false, 1000}} {
		out, h, n, err := p.Next(r, "inference", tc.after)
		if err != nil || out == nil || h.FirstSeq != tc.wantFirst || n != int(h.Count) {
			t.Fatalf("Next after %d: %+v, %d, %v", tc.after, h, n, err)
		}
		stored, _, _, _ := p.PackSegments("inference", r.segsAfter(tc.after))
		if got := bytes.Equal(out, stored); got != tc.asStored {
			t.Errorf("Next after %d sent the stored segments: %v, want %v", tc.after, got, tc.asStored)
		}
		if _, rs, err := Decode(out); err != nil || len(rs) != int(h.Count) || rs[0].Seq != tc.wantFirst {
			t.Fatalf("Next after %d: decode %d records, %v", tc.after, len(rs), err)
		}
	}
	// Segments of a record or two (a slow stream's group commits) are
	// packed afresh, together.
	var small []record.Segment
	for i := 0; i < 1000; i += 2 {
		small = append(small, segmentOf(all[i:i+2], true))
	}
	r.segs = small
	out, h, _, err := p.Next(r, "inference", 0)
	if err != nil || h.FirstSeq != 1 {
		t.Fatal(err)
	}
	if fromSegs, _, _, _ := p.PackSegments("inference", small); bytes.Equal(out, fromSegs) {
		t.Error("segments of two records were sent as they are stored")
	}
	if h.Count != 1000 {
		t.Errorf("the repacked batch holds %d records, want all 1000 (%s)", h.Count, fmt.Sprint(h.StoredLen))
	}
}

func (r segReader) segsAfter(after uint64) []record.Segment {
	var segs []record.Segment
	for _, s := range r.segs {
		if s.Last > after {
			segs = append(segs, s)
		}
	}
	return segs
}
