package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// WireOverhead is the bytes a record takes in the wire layout besides its
// payload.
const WireOverhead = 8 + 1 + 4 + 8 + 8 + 4

// The wire layout of a run of records is the one a telemetry batch's body
// has (sync/batch) and a storage segment's body has, so that a segment
// travels as it is stored. Each record, in seq order, all integers
// big-endian:
//
//	seq (uint64), kind (uint8), boot (uint32), mono ns (int64),
//	wall Unix ns (int64; 0 = unknown), payload length (uint32), payload

// AppendWire appends one record in the wire layout to b. wall is Unix
// nanoseconds, 0 when unknown.
func AppendWire(b []byte, seq uint64, kind Kind, boot uint32, mono time.Duration, wall int64, payload []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, byte(kind))
	b = binary.BigEndian.AppendUint32(b, boot)
	b = binary.BigEndian.AppendUint64(b, uint64(mono))
	b = binary.BigEndian.AppendUint64(b, uint64(wall))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// ErrWire is returned (wrapped) by ParseWire for a body that does not
// parse.
var ErrWire = errors.New("record: bad wire body")

// ParseWire reads the record at the start of body into r (its Stream is
// left as it is; the payload aliases body, capped) and returns the bytes
// it took. A zero wall becomes the zero time.
func ParseWire(body []byte, r *Record) (int, error) {
	if len(body) < WireOverhead {
		return 0, fmt.Errorf("%w: %d bytes left, shorter than a record", ErrWire, len(body))
	}
	r.Seq = binary.BigEndian.Uint64(body)
	r.Kind = Kind(body[8])
	r.Boot = binary.BigEndian.Uint32(body[9:])
	r.Mono = time.Duration(binary.BigEndian.Uint64(body[13:]))
	r.Wall = time.Time{}
	if wall := int64(binary.BigEndian.Uint64(body[21:])); wall != 0 {
		r.Wall = time.Unix(0, wall)
	}
	l := binary.BigEndian.Uint32(body[29:])
	if uint64(len(body)-WireOverhead) < uint64(l) {
		return 0, fmt.Errorf("%w: the payload of record %d runs past the body", ErrWire, r.Seq)
	}
	end := WireOverhead + int(l)
	r.Payload = body[WireOverhead:end:end]
	if r.Kind < KindData || r.Kind > KindNotice {
		return 0, fmt.Errorf("%w: record %d has kind %d", ErrWire, r.Seq, r.Kind)
	}
	return end, nil
}
