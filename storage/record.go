package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Kind says what a record's payload holds.
type Kind uint8

const (
	// KindData is a producer's payload, stored as given.
	KindData Kind = 1
	// KindGap says that records of its stream are missing and why; decode
	// its payload with Record.Gap.
	KindGap Kind = 2
	// KindNotice is written by the store itself: a JSON object with an
	// "event" member ("storage.opened", "storage.recovered"). Notices go to
	// the events stream.
	KindNotice Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindGap:
		return "gap"
	case KindNotice:
		return "notice"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record is one stored record, as the outbox returns it.
type Record struct {
	Stream string
	Seq    uint64 // per stream, from 1, contiguous except where a gap record says why
	Kind   Kind
	Boot   uint32        // the store's boot number: incremented by every Open
	Mono   time.Duration // monotonic time since that Open; comparable within one Boot
	Wall   time.Time     // wall-clock time at Append; may jump
	// Payload is the record's own copy; the caller may keep it.
	Payload []byte
}

// Record value encoding, version 1 (all integers big-endian):
//
//	0      version (1)
//	1      kind
//	2..5   boot number
//	6..13  monotonic nanoseconds since the boot's Open
//	14..21 wall clock, Unix nanoseconds
//	22..   payload
//	last 4 CRC-32C (Castagnoli) of everything before it
//
// The stream and the sequence number are in the key.
const (
	recordVersion = 1
	headerLen     = 22
	crcLen        = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptRecord is returned (wrapped) for a record that does not decode
// or whose checksum does not match.
var ErrCorruptRecord = errors.New("corrupt record")

// putHeader writes a record header into b[:headerLen].
func putHeader(b []byte, kind Kind, boot uint32, mono time.Duration, wall int64) {
	b[0] = recordVersion
	b[1] = byte(kind)
	binary.BigEndian.PutUint32(b[2:], boot)
	binary.BigEndian.PutUint64(b[6:], uint64(mono))
	binary.BigEndian.PutUint64(b[14:], uint64(wall))
}

// appendCRC appends the checksum of b to b.
func appendCRC(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// encodeRecord returns the value of a record; used off the hot path (the
// hot path writes the header in place).
func encodeRecord(kind Kind, boot uint32, mono time.Duration, wall int64, payload []byte) []byte {
	b := make([]byte, headerLen, headerLen+len(payload)+crcLen)
	putHeader(b, kind, boot, mono, wall)
	b = append(b, payload...)
	return appendCRC(b)
}

// decodeRecord fills r's kind, boot, times and payload from a value. The
// payload aliases v.
func decodeRecord(v []byte, r *Record) error {
	if len(v) < headerLen+crcLen {
		return fmt.Errorf("%w: %d bytes, shorter than a header", ErrCorruptRecord, len(v))
	}
	if v[0] != recordVersion {
		return fmt.Errorf("%w: unknown version %d", ErrCorruptRecord, v[0])
	}
	body := v[:len(v)-crcLen]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(v[len(body):]); got != want {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrCorruptRecord, got, want)
	}
	r.Kind = Kind(v[1])
	if r.Kind < KindData || r.Kind > KindNotice {
		return fmt.Errorf("%w: unknown kind %d", ErrCorruptRecord, v[1])
	}
	r.Boot = binary.BigEndian.Uint32(v[2:])
	r.Mono = time.Duration(binary.BigEndian.Uint64(v[6:]))
	r.Wall = time.Unix(0, int64(binary.BigEndian.Uint64(v[14:])))
	r.Payload = body[headerLen:]
	return nil
}

// GapReason says why records are missing.
type GapReason uint8

const (
	// GapEvictedQuota: records were deleted, unsynced, because the buffer
	// was over its quota.
	GapEvictedQuota GapReason = 1
	// GapEvictedDisk: records were deleted, unsynced, because the file
	// system was short of headroom.
	GapEvictedDisk GapReason = 2
	// GapDroppedQueueFull: Append found the queue full; the records never
	// got sequence numbers.
	GapDroppedQueueFull GapReason = 3
	// GapDroppedDiskFull: Append refused records while the disk was short
	// of headroom even after eviction.
	GapDroppedDiskFull GapReason = 4
	// GapDroppedTooLarge: Append refused payloads over MaxRecordBytes.
	GapDroppedTooLarge GapReason = 5
	// GapDroppedOverQuota: Append refused records while the buffer stayed
	// over its quota by half the headroom even after eviction.
	GapDroppedOverQuota GapReason = 6

	gapReasonEnd = 7
)

var gapReasonNames = map[GapReason]string{
	GapEvictedQuota:     "evicted_quota",
	GapEvictedDisk:      "evicted_disk",
	GapDroppedQueueFull: "dropped_queue_full",
	GapDroppedDiskFull:  "dropped_disk_full",
	GapDroppedTooLarge:  "dropped_too_large",
	GapDroppedOverQuota: "dropped_over_quota",
}

func (r GapReason) String() string {
	if s, ok := gapReasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("gap_reason(%d)", uint8(r))
}

// Evicted reports whether the reason is an eviction (the missing records
// had sequence numbers) rather than a drop (they never had any).
func (r GapReason) Evicted() bool { return r == GapEvictedQuota || r == GapEvictedDisk }

// Gap is the payload of a KindGap record.
//
// For an eviction, every sequence number in [First, Last] that the reader
// has not already received is gone, and Count says how many unsynced
// records this eviction deleted. The gap record itself comes later in the
// stream than the hole it explains.
//
// For a drop, First and Last are 0: the dropped records never had sequence
// numbers, so the stream has no hole. Count records were dropped since the
// previous gap record of the same reason, and the gap record's own position
// in the stream says where.
type Gap struct {
	First, Last uint64
	Count       uint64
	Reason      GapReason
}

// Gap payload encoding, version 1: version, reason, then First, Last and
// Count as big-endian uint64s.
const (
	gapVersion = 1
	gapLen     = 2 + 3*8
)

func (g Gap) encode() []byte {
	b := make([]byte, 2, gapLen)
	b[0], b[1] = gapVersion, byte(g.Reason)
	b = binary.BigEndian.AppendUint64(b, g.First)
	b = binary.BigEndian.AppendUint64(b, g.Last)
	return binary.BigEndian.AppendUint64(b, g.Count)
}

func decodeGap(b []byte) (Gap, error) {
	if len(b) != gapLen || b[0] != gapVersion {
		return Gap{}, fmt.Errorf("%w: gap payload of %d bytes, version %d", ErrCorruptRecord, len(b), firstByte(b))
	}
	g := Gap{
		Reason: GapReason(b[1]),
		First:  binary.BigEndian.Uint64(b[2:]),
		Last:   binary.BigEndian.Uint64(b[10:]),
		Count:  binary.BigEndian.Uint64(b[18:]),
	}
	if _, ok := gapReasonNames[g.Reason]; !ok {
		return Gap{}, fmt.Errorf("%w: unknown gap reason %d", ErrCorruptRecord, b[1])
	}
	if g.Reason.Evicted() && (g.First == 0 || g.First > g.Last) {
		return Gap{}, fmt.Errorf("%w: eviction gap [%d, %d]", ErrCorruptRecord, g.First, g.Last)
	}
	return g, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// Gap decodes the payload of a KindGap record.
func (r *Record) Gap() (Gap, error) {
	if r.Kind != KindGap {
		return Gap{}, fmt.Errorf("record %s/%d is a %v record, not a gap", r.Stream, r.Seq, r.Kind)
	}
	return decodeGap(r.Payload)
}
