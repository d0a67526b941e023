package storage

import (
	"encoding/binary"
	"fmt"
	"io"
)

// BackupInfo describes a Backup: what storage/checkpoint writes into a
// checkpoint's manifest and compares with the checkpoint it builds on.
type BackupInfo struct {
	// SnapshotTS is db.MaxVersion() read before the backup: the backup
	// holds every version up to it (and possibly some later ones), and it
	// is the since of the next incremental (DEPS.md).
	SnapshotTS uint64
	// StoreID is the store's incarnation id (StoreID).
	StoreID uint64
	// Boot is the boot number of this Open.
	Boot uint32
	// Drops counts the DropPrefix calls (acknowledged buckets purged,
	// buckets evicted) of this Open before the backup began. DropPrefix
	// leaves no tombstones, so an incremental or differential backup is
	// only complete if Boot and Drops are those of its base.
	Drops uint64
	// Streams maps the stream ids in record keys to stream names.
	Streams map[uint8]string
}

// Backup writes Badger's backup stream of every version ≥ since to w
// (length-prefixed protobuf frames, what badger.DB.Load reads) while
// appends go on. It reads MaxVersion and the drop count first; the stream
// is not one snapshot (each of Badger's stream workers reads at its own),
// so it may hold versions after SnapshotTS as well.
func (s *Store) Backup(w io.Writer, since uint64) (BackupInfo, error) {
	select {
	case <-s.closed:
		return BackupInfo{}, ErrClosed
	default:
	}
	s.writeMu.Lock()
	info := BackupInfo{
		SnapshotTS: s.db.MaxVersion(),
		StoreID:    s.id,
		Boot:       s.boot,
		Drops:      s.drops.Load(),
		Streams:    make(map[uint8]string, len(s.streams)),
	}
	s.writeMu.Unlock()
	for _, st := range s.streams {
		info.Streams[st.id] = st.name
	}
	if _, err := s.db.Backup(w, since); err != nil {
		return BackupInfo{}, fmt.Errorf("storage backup since %d: %w", since, err)
	}
	return info, nil
}

// ParseRecordKey returns the stream id and the last sequence number of a
// record key (the key of a segment ends with its last record's), and
// false for any other key (metadata, state).
func ParseRecordKey(k []byte) (stream uint8, last uint64, ok bool) {
	id, bucket, seq, err := parseRecordKey(k)
	if err != nil || bucket > seq {
		return 0, 0, false
	}
	return id, seq, true
}

// ParseRecordEntry returns the stream id and the run of sequence numbers
// first..last that a record key and its value hold: a segment's, or the
// one record of a format-1 value. It reads the value's header only; the
// checksums are checked when the records are read. ok is false for any
// other key, or a value too short or of an unknown version.
func ParseRecordEntry(k, v []byte) (stream uint8, first, last uint64, ok bool) {
	id, last, ok := ParseRecordKey(k)
	if !ok || len(v) == 0 {
		return 0, 0, 0, false
	}
	switch {
	case v[0] == recordVersion && len(v) >= headerLen+crcLen:
		return id, last, last, true
	case v[0] == segmentVersion && len(v) >= segmentOverhead:
		first := binary.BigEndian.Uint64(v[2:])
		if first == 0 || first > last {
			return 0, 0, 0, false
		}
		return id, first, last, true
	}
	return 0, 0, 0, false
}

// RecordPrefix is the key prefix shared by all records: with
// ParseRecordKey it lets a reader of a restored Badger directory count
// the records.
func RecordPrefix() []byte { return []byte{prefixRecord} }
