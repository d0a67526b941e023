package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/vigil-av/vigil/storage/record"
)

// SegmentReader is a Reader that also hands out a store's segments as
// they are stored (storage.Store.VisitSegments), so that Next can send
// them without decoding and compressing their records again.
type SegmentReader interface {
	Reader
	// VisitSegments calls fn with the stream's segments from the one
	// holding after+1, in order, until fn says to stop or fails. A
	// segment's Stored bytes are valid only until fn returns.
	VisitSegments(stream string, after uint64, fn func(record.Segment) (bool, error)) error
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
	k, err := p.segPacker(stream)
	if err != nil {
		return nil, Header{}, 0, err
	}
	if len(segs) == 0 {
		return nil, Header{}, 0, ErrEmpty
	}
	for _, s := range segs {
		more, err := k.add(s)
		if err != nil {
			return nil, Header{}, 0, err
		}
		if !more {
			break
		}
	}
	if k.n == 0 {
		return nil, Header{}, 0, nil
	}
	out, hdr, err := k.finish()
	if err != nil {
		return nil, Header{}, 0, err
	}
	return out, hdr, k.n, nil
}

// segPack builds one batch from segments added one at a time: their
// stored bytes go in after room left for the header, which finish writes
// once the batch's range, count and sizes are known.
type segPack struct {
	p                        Packer
	stream                   string
	hl, room, maxBody, maxRs int
	out                      []byte
	first, last              uint64
	n, stored, body          int
	recs                     uint64
	crc                      uint32 // CRC-32C of the bodies added so far
}

func (p Packer) segPacker(stream string) (*segPack, error) {
	if err := p.checkStore(); err != nil {
		return nil, err
	}
	if p.Compression != Flate {
		return nil, fmt.Errorf("%w: PackSegments needs Flate compression", ErrInvalid)
	}
	maxPayload, maxBody, maxRecords := p.limits()
	hl := headerLen(p.Vehicle, stream, p.Checkpoint)
	return &segPack{p: p, stream: stream, hl: hl, room: maxPayload - hl - len(finalBlock), maxBody: maxBody, maxRs: maxRecords}, nil
}

// add appends s to the batch and says true, or says false when s does
// not continue it (a hole) or does not fit; an error when s is malformed.
func (k *segPack) add(s record.Segment) (bool, error) {
	if s.First == 0 || s.Last < s.First || s.BodyLen < int(s.Records())*RecordOverhead {
		return false, fmt.Errorf("%w: segment [%d, %d] of %d bytes", ErrSequence, s.First, s.Last, s.BodyLen)
	}
	if k.n > 0 && s.First != k.last+1 {
		return false, nil // a hole: the next batch starts after it
	}
	if k.stored+storedSize(s) > k.room || k.body+s.BodyLen > k.maxBody || k.recs+s.Records() > uint64(k.maxRs) {
		return false, nil
	}
	if k.n == 0 {
		k.out = make([]byte, k.hl, k.hl+k.room+len(finalBlock))
		k.first, k.crc = s.First, s.BodyCRC
	} else {
		k.crc = crc32cCombine(k.crc, s.BodyCRC, s.BodyLen)
	}
	if s.Flate {
		k.out = append(k.out, s.Stored...)
	} else {
		k.out = appendStoredBlocks(k.out, s.Stored)
	}
	k.last = s.Last
	k.n++
	k.stored += storedSize(s)
	k.body += s.BodyLen
	k.recs += s.Records()
	return true, nil
}

// finish writes the header and the batch checksum, combined from the
// header's and the bodies', and ends the body. At least one segment must
// have been added.
func (k *segPack) finish() ([]byte, Header, error) {
	p := k.p
	hdr := Header{Version: Version, Vehicle: p.Vehicle, Stream: k.stream, Store: p.Store, Boot: p.Boot, Compression: Flate,
		Parent: p.Parent, ParentLast: p.ParentLast, Checkpoint: p.Checkpoint,
		FirstSeq: k.first, LastSeq: k.last, Count: uint32(k.recs),
		BodyLen: uint32(k.body), StoredLen: uint32(k.stored + len(finalBlock))}
	if err := checkHeader(hdr); err != nil {
		return nil, Header{}, err
	}
	if err := checkAfterParent(hdr, hdr.FirstSeq); err != nil {
		return nil, Header{}, err
	}
	h := appendHeaderNoCRC(make([]byte, 0, k.hl), hdr)
	if len(h)+4 != k.hl {
		return nil, Header{}, fmt.Errorf("%w: header of %d bytes, %d reserved", ErrInvalid, len(h)+4, k.hl)
	}
	hdr.Checksum = crc32cCombine(crc32.Checksum(h, castagnoli), k.crc, k.body)
	copy(k.out, h)
	binary.BigEndian.PutUint32(k.out[len(h):], hdr.Checksum)
	return append(k.out, finalBlock...), hdr, nil
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
	k, err := p.segPacker(stream)
	if err != nil {
		return nil, Header{}, 0, false, err
	}
	err = sr.VisitSegments(stream, after, func(s record.Segment) (bool, error) {
		if k.n == 0 && s.First != after+1 {
			return false, nil // it begins before or after: Next reads records
		}
		return k.add(s)
	})
	if err != nil {
		return nil, Header{}, 0, false, fmt.Errorf("batch: read segments of %s after %d: %w", stream, after, err)
	}
	if k.n == 0 || k.recs < minSegmentRecords*uint64(k.n) {
		return nil, Header{}, 0, false, nil
	}
	out, hdr, err = k.finish()
	if err != nil {
		return nil, Header{}, 0, false, err
	}
	return out, hdr, int(hdr.Count), true, nil
}
