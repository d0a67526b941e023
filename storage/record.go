package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/vigil-av/vigil/storage/record"
)

// The record's types live in storage/record, which imports only the
// standard library, so that the sync packages can batch and ingest records
// without linking Badger. These names keep them here.
type (
	// Kind says what a record's payload holds.
	Kind = record.Kind
	// Record is one stored record, as the outbox returns it.
	Record = record.Record
	// GapReason says why records are missing.
	GapReason = record.GapReason
	// Gap is the payload of a KindGap record.
	Gap = record.Gap
)

// Kinds of record; see package record.
const (
	KindData   = record.KindData
	KindGap    = record.KindGap
	KindNotice = record.KindNotice
)

// Reasons for a gap; see package record.
const (
	GapEvictedQuota     = record.GapEvictedQuota
	GapEvictedDisk      = record.GapEvictedDisk
	GapDroppedQueueFull = record.GapDroppedQueueFull
	GapDroppedDiskFull  = record.GapDroppedDiskFull
	GapDroppedTooLarge  = record.GapDroppedTooLarge
	GapDroppedOverQuota = record.GapDroppedOverQuota
)

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
var ErrCorruptRecord = record.ErrCorruptRecord

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
