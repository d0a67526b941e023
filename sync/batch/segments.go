package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/vigil-av/vigil/storage/record"
)

// SegmentReader is a Reader that also hands out a store's segments as
// they are stored (storage.Store.ReadSegments), so that Next can send
// them without decoding and compressing their records again.
type SegmentReader interface {
	Reader
	// ReadSegments returns the stream's segments from the one holding
	// after+1, in order, up to about maxBytes stored.
	ReadSegments(stream string, after uint64, maxBytes int) ([]record.Segment, error)
}

// minSegmentRecords is the fewest records a segment must hold on average
// for Next to send segments as they are stored. A group commit of a
// stream that appends a few records a commit makes segments of a record
// or two, which flate compresses poorly on their own: those are packed
// afresh, all together, as before segments (they are cheap to pack; a
// backlog of large segments is what costs the CPU).
const minSegmentRecords = 64

// finalBlock is an empty final fixed-Huffman deflate block: it ends a
// batch body made of sync-flushed segments.
var finalBlock = []byte{0x03, 0x00}

// maxStoredBlock is the most a deflate stored block holds.
const maxStoredBlock = 65535

// storedSize is the bytes a segment takes in a flate body: its stored
// stream, or for an uncompressed one, its body in stored blocks.
func storedSize(s record.Segment) int {
	if s.Flate {
		return len(s.Stored)
	}
	return len(s.Stored) + 5*max(1, (len(s.Stored)+maxStoredBlock-1)/maxStoredBlock)
}

// appendStoredBlocks appends body as non-final deflate stored blocks. The
// stream before it ends on a byte boundary (a sync flush, or another
// stored block), so each block's 3 header bits take a byte of their own.
func appendStoredBlocks(b, body []byte) []byte {
	for first := true; first || len(body) > 0; first = false {
		n := min(len(body), maxStoredBlock)
		b = append(b, 0x00)
		b = binary.LittleEndian.AppendUint16(b, uint16(n))
		b = binary.LittleEndian.AppendUint16(b, ^uint16(n))
		b = append(b, body[:n]...)
		body = body[n:]
	}
	return b
}

// PackSegments encodes as many whole segments from the front of segs as
// fit in one batch — contiguous in seq, under MaxRecords, MaxBody
// uncompressed and MaxPayload encoded — without decompressing or
// compressing them: flate segments go as they are stored, uncompressed
// ones as deflate stored blocks, and the batch's checksum is combined
// from the header's and theirs. It returns the batch, its header and how
// many segments it took; none (a nil batch and no error) when the first
// does not fit on its own. The Packer's Compression must be Flate.
func (p Packer) PackSegments(stream string, segs []record.Segment) ([]byte, Header, int, error) {
	if err := p.checkStore(); err != nil {
		return nil, Header{}, 0, err
	}
	if p.Compression != Flate {
		return nil, Header{}, 0, fmt.Errorf("%w: PackSegments needs Flate compression", ErrInvalid)
	}
	if len(segs) == 0 {
		return nil, Header{}, 0, ErrEmpty
	}
	maxPayload, maxBody, maxRecords := p.limits()
	room := maxPayload - headerLen(p.Vehicle, stream, p.Checkpoint) - len(finalBlock)
	n, stored, body, recs := 0, 0, 0, uint64(0)
	for ; n < len(segs); n++ {
		s := segs[n]
		if s.First == 0 || s.Last < s.First || s.BodyLen < int(s.Records())*RecordOverhead {
			return nil, Header{}, 0, fmt.Errorf("%w: segment [%d, %d] of %d bytes", ErrSequence, s.First, s.Last, s.BodyLen)
		}
		if n > 0 && s.First != segs[n-1].Last+1 {
			break // a hole: the next batch starts after it
		}
		if stored+storedSize(s) > room || body+s.BodyLen > maxBody || recs+s.Records() > uint64(maxRecords) {
			break
		}
		stored += storedSize(s)
		body += s.BodyLen
		recs += s.Records()
	}
	if n == 0 {
		return nil, Header{}, 0, nil
	}
	hdr := Header{Version: Version, Vehicle: p.Vehicle, Stream: stream, Store: p.Store, Boot: p.Boot, Compression: Flate,
		Parent: p.Parent, ParentLast: p.ParentLast, Checkpoint: p.Checkpoint,
		FirstSeq: segs[0].First, LastSeq: segs[n-1].Last, Count: uint32(recs),
		BodyLen: uint32(body), StoredLen: uint32(stored + len(finalBlock))}
	if err := checkHeader(hdr); err != nil {
		return nil, Header{}, 0, err
	}
	if err := checkAfterParent(hdr, hdr.FirstSeq); err != nil {
		return nil, Header{}, 0, err
	}
	out := appendHeaderNoCRC(make([]byte, 0, headerLen(p.Vehicle, stream, p.Checkpoint)+int(hdr.StoredLen)), hdr)
	crc := crc32.Checksum(out, castagnoli)
	for _, s := range segs[:n] {
		crc = crc32cCombine(crc, s.BodyCRC, s.BodyLen)
	}
	hdr.Checksum = crc
	out = binary.BigEndian.AppendUint32(out, crc)
	for _, s := range segs[:n] {
		if s.Flate {
			out = append(out, s.Stored...)
		} else {
			out = appendStoredBlocks(out, s.Stored)
		}
	}
	return append(out, finalBlock...), hdr, n, nil
}

// nextSegments is Next's way through stored segments: it packs the ones
// that begin right after after, if r hands them out and they are large
// enough to be worth sending as they are. ok is false when Next should
// read and pack records instead.
func (p Packer) nextSegments(r Reader, stream string, after uint64) (out []byte, hdr Header, n int, ok bool, err error) {
	sr, is := r.(SegmentReader)
	if !is || p.Compression != Flate {
		return nil, Header{}, 0, false, nil
	}
	maxPayload, _, _ := p.limits()
	segs, err := sr.ReadSegments(stream, after, maxPayload)
	if err != nil {
		return nil, Header{}, 0, false, fmt.Errorf("batch: read segments of %s after %d: %w", stream, after, err)
	}
	if len(segs) == 0 || segs[0].First != after+1 {
		return nil, Header{}, 0, false, nil
	}
	var recs uint64
	for _, s := range segs {
		recs += s.Records()
	}
	if recs < minSegmentRecords*uint64(len(segs)) {
		return nil, Header{}, 0, false, nil
	}
	out, hdr, k, err := p.PackSegments(stream, segs)
	if err != nil || k == 0 {
		return nil, Header{}, 0, false, err
	}
	return out, hdr, int(hdr.Count), true, nil
}
