// Package batch is the wire format of telemetry batches and of their
// acknowledgements: what the edge uploader publishes on
// vigil/v1/<vehicle>/{telemetry,logs} and the ingester answers on
// vigil/v1/<vehicle>/ack. It is pure: no I/O, no clock.
//
// # Batch layout, version 3
//
// All integers are big-endian.
//
//	0..3   magic "VGB\x00"
//	4      format version (3; Decode also reads 2)
//	5      compression: 0 none, 1 flate (RFC 1951)
//	6      vehicle id length V (1..64), then V bytes
//	.      stream name length S (1..64), then S bytes
//	.      store (uint64, non-zero): the uploading store's incarnation id
//	       (storage.Store.StoreID); sequence numbers restart at 1 when a
//	       vehicle's store is moved aside and started afresh, so a record
//	       is named by (vehicle, store, stream, seq)
//	.      boot (uint32): the uploading store's boot when the batch was built
//	.      parent store (uint64; 0 = none): the store this one was restored
//	       from, when the batch holds records written after the restore
//	.      parent last (uint64): the highest seq of this stream the parent
//	       store had in the checkpoint this store was restored from
//	.      checkpoint id length C (0..64), then C bytes: that checkpoint
//	       (manifest.ValidID when C > 0)
//	.      first seq, last seq (uint64 each)
//	.      record count (uint32) = last - first + 1
//	.      body length before compression (uint32)
//	.      stored body length (uint32): the bytes that follow
//	.      CRC-32C (Castagnoli) of the header bytes before it and of the
//	       uncompressed body
//	.      body, stored length bytes
//
// A flate body is one raw deflate stream: Pack compresses the records,
// PackSegments joins a store's segments as they are stored (sync-flushed
// streams and stored blocks, then an empty final block). Decode reads
// either.
//
// The body holds count records in seq order, each:
//
//	seq (uint64), kind (uint8), boot (uint32), mono ns (int64),
//	wall Unix ns (int64), payload length (uint32), payload
//
// The lineage (parent store, parent last, checkpoint) is all zero, or
// names a parent other than the store and a valid checkpoint id, and then
// the batch's records all come after parent last: a store restored from
// a checkpoint is a new incarnation whose sequence numbers continue the
// parent's (docs/fleet.md, "Restored vehicles"); records it holds up to
// parent last are the parent's and go under the parent's store id, with
// no lineage. A batch never holds both.
//
// Version 2 is version 3 without the lineage (Decode reads it with the
// lineage zero). Version 1 had no store; Decode refuses it (ErrVersion).
//
// A batch covers one contiguous range of one stream: seq of record i is
// first + i. Holes left by eviction fall between batches, never inside one;
// the gap record that explains a hole travels in a later batch like any
// other record.
//
// The checksum is CRC-32C rather than SHA-256: it is there to catch
// corruption and encoder bugs, not forgery — the broker link is mutually
// authenticated and the ingester checks that the header's vehicle matches
// the topic it came on.
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/storage/record"
)

// Version is the batch format version Encode writes. Decode accepts it
// and MinVersion; version 1 (no store id) is refused.
const Version = 3

// MinVersion is the oldest version Decode accepts: 2, without lineage.
const MinVersion = 2

// Magic starts every batch.
const Magic = "VGB\x00"

const (
	// DefaultMaxPayload is the largest encoded batch Pack builds: 128 KiB,
	// the message size AWS IoT Core accepts.
	DefaultMaxPayload = 128 << 10
	// DefaultMaxBody bounds the uncompressed body, on both sides: Pack
	// builds no larger body, Decode refuses one (the decompression-bomb
	// limit).
	DefaultMaxBody = 1 << 20
	// RecordOverhead is the bytes a record takes in the body besides its
	// payload.
	RecordOverhead = 8 + 1 + 4 + 8 + 8 + 4
	maxName        = 64
)

// Compression says how the body is stored.
type Compression uint8

const (
	None  Compression = 0
	Flate Compression = 1
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Flate:
		return "flate"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Header describes a batch. Encode derives Count, BodyLen, StoredLen and
// Checksum from the records; the caller sets the rest.
type Header struct {
	Version     uint8
	Compression Compression
	Vehicle     string
	Stream      string
	Store       uint64 // the uploading store's incarnation id; never 0
	Boot        uint32
	// Parent, ParentLast and Checkpoint are the lineage of a restored
	// store (version 3): the store it was restored from, the highest
	// seq of this stream that store had in the checkpoint, and the
	// checkpoint's id. All zero for a store that was never restored and
	// for the parent's records a restored store uploads under Parent's
	// id.
	Parent     uint64
	ParentLast uint64
	Checkpoint string
	FirstSeq   uint64
	LastSeq    uint64
	Count      uint32
	BodyLen    uint32 // uncompressed
	StoredLen  uint32 // as carried
	Checksum   uint32 // CRC-32C of the header before it and the uncompressed body
}

// Record is one telemetry record inside a batch: record.Record without
// the stream, which the header carries.
type Record struct {
	Seq     uint64
	Kind    record.Kind
	Boot    uint32
	Mono    time.Duration
	Wall    time.Time
	Payload []byte
}

// FromStorage converts records read from the outbox.
func FromStorage(rs []record.Record) []Record {
	out := make([]Record, len(rs))
	for i, r := range rs {
		out[i] = Record{Seq: r.Seq, Kind: r.Kind, Boot: r.Boot, Mono: r.Mono, Wall: r.Wall, Payload: r.Payload}
	}
	return out
}

// Storage converts r back into a storage record of stream, so that
// storage's decoders (Record.Gap) apply.
func (r Record) Storage(stream string) record.Record {
	return record.Record{Stream: stream, Seq: r.Seq, Kind: r.Kind, Boot: r.Boot, Mono: r.Mono, Wall: r.Wall, Payload: r.Payload}
}

// Errors Decode and Encode return, wrapped with detail.
var (
	ErrBadMagic       = errors.New("batch: bad magic")
	ErrVersion        = errors.New("batch: unsupported format version")
	ErrTruncated      = errors.New("batch: truncated")
	ErrTrailing       = errors.New("batch: trailing bytes")
	ErrChecksum       = errors.New("batch: checksum mismatch")
	ErrSequence       = errors.New("batch: records not contiguous")
	ErrCount          = errors.New("batch: record count mismatch")
	ErrTooLarge       = errors.New("batch: body over the size limit")
	ErrCompression    = errors.New("batch: bad compression")
	ErrInvalid        = errors.New("batch: invalid header field")
	ErrRecordTooLarge = errors.New("batch: record does not fit in one batch")
	ErrEmpty          = errors.New("batch: no records")
)

// ValidName reports whether s may be a vehicle id or a stream name: 1 to
// 64 bytes of a-z, A-Z, 0-9, '_', '-' and '.', not starting with '.'. Such
// a name is safe as an MQTT topic level and as a directory name.
func ValidName(s string) bool {
	if s == "" || len(s) > maxName || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode encodes records, which must be contiguous and in seq order, under
// hdr's vehicle, stream, store, boot, lineage and compression. A zero
// store, or a lineage that is not all zero yet names no parent, the
// store itself or no valid checkpoint, or that the first record does not
// come after, is ErrInvalid. It fills in the range and
// the lengths. Flate falls back to None when compressing does not shrink
// the body, so the encoded size never exceeds the uncompressed one by more
// than the header.
func Encode(hdr Header, records []Record) ([]byte, error) {
	if len(records) == 0 {
		return nil, ErrEmpty
	}
	if err := checkHeader(hdr); err != nil {
		return nil, err
	}
	if err := checkAfterParent(hdr, records[0].Seq); err != nil {
		return nil, err
	}
	if uint64(len(records)) > 1<<32-1 {
		return nil, fmt.Errorf("%w: %d records", ErrTooLarge, len(records))
	}
	size := 0
	for i, r := range records {
		if i > 0 && r.Seq != records[0].Seq+uint64(i) {
			return nil, fmt.Errorf("%w: seq %d after %d", ErrSequence, r.Seq, records[i-1].Seq)
		}
		if r.Seq == 0 {
			return nil, fmt.Errorf("%w: seq 0", ErrSequence)
		}
		size += RecordOverhead + len(r.Payload)
	}
	if size > 1<<32-1 {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	d := getDeflater()
	defer putDeflater(d)
	body := slices.Grow(d.body[:0], size)
	for _, r := range records {
		body = appendRecord(body, r.Seq, r.Kind, r.Boot, r.Mono, r.Wall, r.Payload)
	}
	d.body = body
	hdr.FirstSeq = records[0].Seq
	hdr.LastSeq = records[len(records)-1].Seq
	hdr.Count = uint32(len(records))
	out, _, _ := d.encode(hdr, body, math.MaxInt)
	return out, nil
}

// checkHeader checks the fields of hdr that the caller of Encode sets.
func checkHeader(hdr Header) error {
	if !ValidName(hdr.Vehicle) {
		return fmt.Errorf("%w: vehicle %q", ErrInvalid, hdr.Vehicle)
	}
	if !ValidName(hdr.Stream) {
		return fmt.Errorf("%w: stream %q", ErrInvalid, hdr.Stream)
	}
	if hdr.Store == 0 {
		return fmt.Errorf("%w: store id 0", ErrInvalid)
	}
	if hdr.Compression != None && hdr.Compression != Flate {
		return fmt.Errorf("%w: %v", ErrCompression, hdr.Compression)
	}
	return checkLineage(hdr)
}

// checkLineage checks that hdr's lineage is all zero or names a parent
// other than the store and a valid checkpoint.
func checkLineage(hdr Header) error {
	switch {
	case hdr.Parent == 0 && hdr.ParentLast == 0 && hdr.Checkpoint == "":
		return nil
	case hdr.Parent == 0:
		return fmt.Errorf("%w: lineage without a parent store (parent last %d, checkpoint %q)", ErrInvalid, hdr.ParentLast, hdr.Checkpoint)
	case hdr.Parent == hdr.Store:
		return fmt.Errorf("%w: parent store %016x is the store itself", ErrInvalid, hdr.Parent)
	case len(hdr.Checkpoint) > maxName || !manifest.ValidID(hdr.Checkpoint):
		return fmt.Errorf("%w: checkpoint id %q", ErrInvalid, hdr.Checkpoint)
	}
	return nil
}

// checkAfterParent checks that a batch with a lineage starts after its
// parent last.
func checkAfterParent(hdr Header, first uint64) error {
	if hdr.Parent != 0 && first <= hdr.ParentLast {
		return fmt.Errorf("%w: seq %d is the parent's (parent last %d): a batch with a lineage holds only later records", ErrInvalid, first, hdr.ParentLast)
	}
	return nil
}

// encode encodes body, the records hdr's range and count describe (the
// caller checked them), under hdr's names, store, boot and compression,
// into a new slice. It returns the batch and its complete header, as
// parseHeader would read it back, and the batch's size; when that is over
// limit, it builds no batch and returns nil. body may be d.body.
func (d *deflater) encode(hdr Header, body []byte, limit int) ([]byte, Header, int) {
	var c []byte
	if hdr.Compression == Flate {
		c = d.deflate(body)
	}
	return seal(hdr, body, c, limit)
}

// seal is encode with the body's compressed form c already made (when
// hdr.Compression is Flate): it is stored unless it is no shorter than
// the body.
func seal(hdr Header, body, c []byte, limit int) ([]byte, Header, int) {
	hdr.Version = Version
	hdr.BodyLen = uint32(len(body))
	stored := body
	if hdr.Compression == Flate {
		if len(c) < len(body) {
			stored = c
		} else {
			hdr.Compression = None
		}
	}
	hdr.StoredLen = uint32(len(stored))
	size := headerLen(hdr.Vehicle, hdr.Stream, hdr.Checkpoint) + len(stored)
	if size > limit {
		return nil, hdr, size
	}
	out := appendHeaderNoCRC(make([]byte, 0, size), hdr)
	hdr.Checksum = crc32.Update(crc32.Checksum(out, castagnoli), castagnoli, body)
	out = binary.BigEndian.AppendUint32(out, hdr.Checksum)
	return append(out, stored...), hdr, size
}

// appendRecord appends one record in the body's layout.
func appendRecord(b []byte, seq uint64, kind record.Kind, boot uint32, mono time.Duration, wall time.Time, payload []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, byte(kind))
	b = binary.BigEndian.AppendUint32(b, boot)
	b = binary.BigEndian.AppendUint64(b, uint64(mono))
	var w int64
	if !wall.IsZero() {
		w = wall.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(w))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// appendHeaderNoCRC appends h's header up to the checksum, in the layout
// of h.Version (the lineage only from version 3).
func appendHeaderNoCRC(b []byte, h Header) []byte {
	b = append(b, Magic...)
	b = append(b, h.Version, byte(h.Compression), byte(len(h.Vehicle)))
	b = append(b, h.Vehicle...)
	b = append(b, byte(len(h.Stream)))
	b = append(b, h.Stream...)
	b = binary.BigEndian.AppendUint64(b, h.Store)
	b = binary.BigEndian.AppendUint32(b, h.Boot)
	if h.Version >= 3 {
		b = binary.BigEndian.AppendUint64(b, h.Parent)
		b = binary.BigEndian.AppendUint64(b, h.ParentLast)
		b = append(b, byte(len(h.Checkpoint)))
		b = append(b, h.Checkpoint...)
	}
	b = binary.BigEndian.AppendUint64(b, h.FirstSeq)
	b = binary.BigEndian.AppendUint64(b, h.LastSeq)
	b = binary.BigEndian.AppendUint32(b, h.Count)
	b = binary.BigEndian.AppendUint32(b, h.BodyLen)
	return binary.BigEndian.AppendUint32(b, h.StoredLen)
}
