package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	kflate "github.com/klauspost/compress/flate"

	"github.com/vigil-av/vigil/storage/record"
)

// Segment value encoding, storage format 2 (all integers big-endian). A
// segment is a run of consecutive records of one stream, all in one
// bucket; its key is r <id> <bucket> <last seq>, so that a seek to the
// key of seq n lands on the segment that holds n (or, past a hole, on the
// first one after it).
//
//	0      version (2)
//	1      compression: 0 none, 1 flate (RFC 1951), sync-flushed and
//	       without a final block, so that segments concatenate
//	2..9   first seq
//	10..17 wall clock of the first record, Unix ns
//	18..21 body length before compression
//	22..25 CRC-32C of the body before compression
//	26..   the body as stored
//	last 4 CRC-32C of everything before it
//
// The body is the records in seq order in the wire layout of package
// record (record.AppendWire), the layout of a telemetry batch's body: a
// segment travels as it is stored.
//
// Format 1 wrote one record per key (recordVersion, record.go); Open
// reads such a store and reads each of its values as a segment of one
// record.
const (
	segmentVersion   = 2
	segHeaderLen     = 26
	segmentOverhead  = segHeaderLen + crcLen
	compressionNone  = 0
	compressionFlate = 1

	// segmentLevel is the flate level segments are sealed at, by the
	// writer goroutine while it collects the next group commit.
	segmentLevel = 1
	// skipAfterIncompressible is how many segments of a stream are stored
	// uncompressed after one that compression saved less than an eighth
	// of.
	skipAfterIncompressible = 16
	// minJudgedBody is the smallest body whose compression decides
	// whether the stream's next segments are tried.
	minJudgedBody = 4 << 10
)

// finalBlock is an empty final fixed-Huffman deflate block: it ends a
// run of sync-flushed segments.
var finalBlock = []byte{0x03, 0x00}

// segment is a sealed run of records on its way to Badger.
type segment struct {
	st          *Stream
	bucket      uint64
	first, last uint64
	firstWall   int64
	value       []byte
}

// builder collects one stream's records for the next segment; the
// writer goroutine's own.
type builder struct {
	bucket      uint64
	first, last uint64
	firstWall   int64
	n           int
	body        []byte
	skip        int // segments still to store without trying to compress
}

// segmenter seals records into segments: the writer goroutine's own.
type segmenter struct {
	limit  int // SegmentBytes
	w      *kflate.Writer
	out    bytes.Buffer
	sealed []segment
	recs   int // records in sealed and in the builders
	bytes  int // their encoded size as Append queued them
}

func newSegmenter(limit int) *segmenter {
	w, err := kflate.NewWriter(nil, segmentLevel)
	if err != nil {
		panic(fmt.Sprintf("storage: flate level %d: %v", segmentLevel, err))
	}
	return &segmenter{limit: limit, w: w}
}

// add appends an encoded record (header and payload, as Append built it)
// to its stream's builder, sealing the builder first when the record is
// of another bucket or would overflow the segment.
func (g *segmenter) add(st *Stream, seq uint64, v []byte) {
	b := &st.seg
	bucket := seq / st.bucketRecords
	payload := v[headerLen:]
	if b.n > 0 && (bucket != b.bucket || len(b.body)+record.WireOverhead+len(payload) > g.limit) {
		g.seal(st)
	}
	if b.n == 0 {
		b.bucket, b.first, b.firstWall = bucket, seq, wallOf(v)
	}
	b.body = record.AppendWire(b.body, seq, Kind(v[1]), binary.BigEndian.Uint32(v[2:]),
		durationAt(v[6:]), int64(binary.BigEndian.Uint64(v[14:])), payload)
	b.last = seq
	b.n++
	g.recs++
	g.bytes += len(v)
}

// seal turns st's builder into a segment: compressed when that saves
// bytes, stored as it is otherwise. A stream whose segments stop
// compressing (payloads already compressed or encrypted) has its next
// skipAfterIncompressible segments stored without trying, then tries
// again.
func (g *segmenter) seal(st *Stream) {
	b := &st.seg
	comp, stored := byte(compressionNone), b.body
	if b.skip > 0 {
		b.skip--
	} else {
		g.out.Reset()
		g.w.Reset(&g.out)
		g.w.Write(b.body) //nolint:errcheck // writes to a bytes.Buffer do not fail
		g.w.Flush()       //nolint:errcheck
		if out := g.out.Bytes(); len(out) < len(b.body) {
			comp, stored = compressionFlate, out
		}
		// A body of a few records says little about the stream: flate's
		// own overhead eats what it saves there.
		if len(b.body) >= minJudgedBody && len(stored) > len(b.body)*7/8 {
			b.skip = skipAfterIncompressible
		}
	}
	v := make([]byte, segHeaderLen, segmentOverhead+len(stored))
	v[0], v[1] = segmentVersion, comp
	binary.BigEndian.PutUint64(v[2:], b.first)
	binary.BigEndian.PutUint64(v[10:], uint64(b.firstWall))
	binary.BigEndian.PutUint32(v[18:], uint32(len(b.body)))
	binary.BigEndian.PutUint32(v[22:], crc32.Checksum(b.body, castagnoli))
	v = appendCRC(append(v, stored...))
	g.sealed = append(g.sealed, segment{st: st, bucket: b.bucket, first: b.first, last: b.last, firstWall: b.firstWall, value: v})
	b.n, b.body = 0, b.body[:0]
	if cap(b.body) > 2*g.limit {
		b.body = nil
	}
}

// sealAll seals every stream's builder that holds records and returns
// the segments sealed since the last reset.
func (g *segmenter) sealAll(streams []*Stream) []segment {
	for _, st := range streams {
		if st.seg.n > 0 {
			g.seal(st)
		}
	}
	return g.sealed
}

// reset forgets the sealed segments once they are committed.
func (g *segmenter) reset() {
	clear(g.sealed)
	g.sealed, g.recs, g.bytes = g.sealed[:0], 0, 0
}

// segView is a segment as read back: its header and the body as stored.
type segView struct {
	first, last uint64
	firstWall   int64
	comp        byte
	bodyLen     int
	bodyCRC     uint32
	stored      []byte // aliases the value
}

// parseSegment checks a value read under a record key whose seq is last.
// A format-1 value (one record) becomes a segment of that record,
// uncompressed.
func parseSegment(last uint64, v []byte) (segView, error) {
	if len(v) > 0 && v[0] == recordVersion {
		var r Record
		if err := decodeRecord(v, &r); err != nil {
			return segView{}, err
		}
		body := record.AppendWire(nil, last, r.Kind, r.Boot, r.Mono, r.Wall.UnixNano(), r.Payload)
		return segView{first: last, last: last, firstWall: r.Wall.UnixNano(), bodyLen: len(body),
			bodyCRC: crc32.Checksum(body, castagnoli), stored: body}, nil
	}
	if len(v) < segmentOverhead {
		return segView{}, fmt.Errorf("%w: segment of %d bytes, shorter than its header", ErrCorruptRecord, len(v))
	}
	if v[0] != segmentVersion {
		return segView{}, fmt.Errorf("%w: unknown version %d", ErrCorruptRecord, v[0])
	}
	end := len(v) - crcLen
	if got, want := crc32.Checksum(v[:end], castagnoli), binary.BigEndian.Uint32(v[end:]); got != want {
		return segView{}, fmt.Errorf("%w: segment checksum %08x, want %08x", ErrCorruptRecord, got, want)
	}
	sv := segView{
		first: binary.BigEndian.Uint64(v[2:]), last: last, comp: v[1],
		firstWall: int64(binary.BigEndian.Uint64(v[10:])),
		bodyLen:   int(binary.BigEndian.Uint32(v[18:])), bodyCRC: binary.BigEndian.Uint32(v[22:]),
		stored: v[segHeaderLen:end],
	}
	switch {
	case sv.comp != compressionNone && sv.comp != compressionFlate:
		return segView{}, fmt.Errorf("%w: unknown compression %d", ErrCorruptRecord, sv.comp)
	case sv.first == 0 || sv.first > last:
		return segView{}, fmt.Errorf("%w: segment [%d, %d]", ErrCorruptRecord, sv.first, last)
	case sv.comp == compressionNone && len(sv.stored) != sv.bodyLen:
		return segView{}, fmt.Errorf("%w: %d body bytes stored, header says %d", ErrCorruptRecord, len(sv.stored), sv.bodyLen)
	}
	return sv, nil
}

// appendBody appends the segment's body, decompressed, to dst and checks
// it against the header's length and checksum.
func (sv segView) appendBody(dst []byte) ([]byte, error) {
	start := len(dst)
	if sv.comp == compressionNone {
		dst = append(dst, sv.stored...)
	} else {
		dst = growTo(dst, start+sv.bodyLen)
		fr := inflaters.Get().(*inflater)
		err := fr.inflate(sv.stored, dst[start:])
		inflaters.Put(fr)
		if err != nil {
			return dst[:start], fmt.Errorf("%w: segment [%d, %d]: %v", ErrCorruptRecord, sv.first, sv.last, err)
		}
	}
	if got := crc32.Checksum(dst[start:], castagnoli); got != sv.bodyCRC {
		return dst[:start], fmt.Errorf("%w: segment [%d, %d] body checksum %08x, want %08x", ErrCorruptRecord, sv.first, sv.last, got, sv.bodyCRC)
	}
	return dst, nil
}

// growTo returns b extended to length n, reallocating if it must.
func growTo(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	return append(b[:cap(b)], make([]byte, n-cap(b))...)[:n]
}

// inflater is a reusable decompressor of segments.
type inflater struct {
	r   io.ReadCloser
	src bytes.Reader
	end bytes.Reader
	in  io.Reader
}

var inflaters = sync.Pool{New: func() any { return &inflater{} }}

// inflate decompresses stored, a sync-flushed deflate stream without a
// final block, into exactly len(dst) bytes.
func (f *inflater) inflate(stored, dst []byte) error {
	f.src.Reset(stored)
	f.end.Reset(finalBlock)
	f.in = io.MultiReader(&f.src, &f.end)
	if f.r == nil {
		f.r = kflate.NewReader(f.in)
	} else if err := f.r.(kflate.Resetter).Reset(f.in, nil); err != nil {
		return err
	}
	if _, err := io.ReadFull(f.r, dst); err != nil {
		return fmt.Errorf("inflate: %w", err)
	}
	var one [1]byte
	if n, _ := f.r.Read(one[:]); n != 0 {
		return fmt.Errorf("inflate: more than the %d bytes the header says", len(dst))
	}
	return nil
}

// parseBody calls fn for each record of a segment's body, in order,
// checking that they are the segment's run of seqs.
func (sv segView) parseBody(body []byte, fn func(r *Record) bool) error {
	var r Record
	want := sv.first
	for p := 0; p < len(body); want++ {
		n, err := record.ParseWire(body[p:], &r)
		if err != nil {
			return fmt.Errorf("%w: segment [%d, %d]: %v", ErrCorruptRecord, sv.first, sv.last, err)
		}
		if r.Seq != want || r.Seq > sv.last {
			return fmt.Errorf("%w: segment [%d, %d] holds seq %d where %d belongs", ErrCorruptRecord, sv.first, sv.last, r.Seq, want)
		}
		p += n
		if !fn(&r) {
			return nil
		}
	}
	if want != sv.last+1 {
		return fmt.Errorf("%w: segment [%d, %d] ends at seq %d", ErrCorruptRecord, sv.first, sv.last, want-1)
	}
	return nil
}

// durationAt reads a big-endian int64 of nanoseconds.
func durationAt(b []byte) time.Duration { return time.Duration(binary.BigEndian.Uint64(b)) }
