package record

import (
	"encoding/binary"
	"fmt"
)

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

	// MaxGapReason is the highest reason; an array indexed by reason has
	// MaxGapReason+1 elements.
	MaxGapReason = GapDroppedOverQuota
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

// Encode returns the payload of a KindGap record saying g.
func (g Gap) Encode() []byte {
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
