package storage

import (
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/vigil-av/vigil/storage/record"
)

// Outbox is what the sync package needs from the store: read each stream
// in order from its cursor, and acknowledge what the cloud has stored.
// *Store implements it.
type Outbox interface {
	// StoreID is the store's incarnation id (Store.StoreID): non-zero, fixed
	// for the life of the data directory, new when a directory is moved
	// aside and started afresh and sequence numbers restart at 1. Batches
	// carry it so that the cloud keys records on (store, stream, seq).
	StoreID() uint64
	// Streams lists the stream names, highest priority first.
	Streams() []string
	// Read returns up to maxRecords durable records of stream with
	// sequence numbers above after, in order, stopping before maxBytes of
	// payload (but always returning at least one record if there is one).
	// Gap records come through like any other, with Kind KindGap.
	Read(stream string, after uint64, maxRecords, maxBytes int) ([]Record, error)
	// Ack records that the cloud has stored every record of stream up to
	// through; acknowledged records become eligible for deletion.
	// Acknowledging less than the cursor is a no-op. On return the cursor
	// survives a crash of the process; it survives a power loss once the
	// store's next commit or disk check (CheckInterval) has synced it —
	// a cursor lost that way only makes the uploader send again what the
	// cloud acknowledges as duplicates.
	Ack(stream string, through uint64) error
	// Cursor returns the highest acknowledged sequence number.
	Cursor(stream string) (uint64, error)
	// Backlog describes what is durable but not acknowledged.
	Backlog(stream string) (Backlog, error)
	// DurableChanged returns a channel closed when more records are
	// durable, so a reader can wait instead of polling.
	DurableChanged() <-chan struct{}
}

var _ Outbox = (*Store)(nil)

// Backlog is what a stream holds that the cloud has not acknowledged.
type Backlog struct {
	Records uint64 // durable records above the cursor
	Bytes   int64  // their size in the store (segments as stored), estimated
	// OldestWall is the wall clock of the oldest of them (zero if none),
	// and OldestAge its age: measured on the monotonic clock when the
	// record is from this boot, on the wall clock otherwise.
	OldestWall time.Time
	OldestAge  time.Duration
}

func (s *Store) stream(name string) (*Stream, error) {
	st := s.byName[name]
	if st == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownStream, name)
	}
	select {
	case <-s.closed:
		return nil, ErrClosed
	default:
	}
	return st, nil
}

// Read implements Outbox. Records evicted or purged are skipped; a reader
// that finds a hole learns why from a later gap record. The payloads of
// the records returned share the decompressed bodies of their segments
// (one allocation per segment, not per record): a caller that keeps a few
// of them for long should copy them rather than hold their buffers.
func (s *Store) Read(stream string, after uint64, maxRecords, maxBytes int) ([]Record, error) {
	st, err := s.stream(stream)
	if err != nil {
		return nil, err
	}
	durable := st.durable.Load()
	if after >= durable || maxRecords <= 0 {
		return nil, nil
	}
	out := make([]Record, 0, min(uint64(maxRecords), durable-after))
	bytes, full := 0, false
	err = s.segmentsFrom(st, after, durable, func(last uint64, v []byte) (bool, error) {
		sv, err := parseSegment(last, v)
		if err != nil {
			return false, err
		}
		body, err := sv.appendBody(make([]byte, 0, sv.bodyLen))
		if err != nil {
			return false, err
		}
		err = sv.parseBody(body, func(r *Record) bool {
			if r.Seq <= after {
				return true
			}
			if len(out) == maxRecords || len(out) > 0 && bytes+len(r.Payload) > maxBytes {
				full = true
				return false
			}
			r.Stream = st.name
			bytes += len(r.Payload)
			out = append(out, *r)
			return true
		})
		return !full, err
	})
	if err != nil {
		return out, fmt.Errorf("storage read %s after %d: %w", stream, after, err)
	}
	return out, nil
}

// Ack implements Outbox.
func (s *Store) Ack(stream string, through uint64) error {
	st, err := s.stream(stream)
	if err != nil {
		return err
	}
	if d := st.durable.Load(); through > d {
		return fmt.Errorf("storage ack %s through %d: only %d is durable", stream, through, d)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if through <= st.cursor.Load() {
		return nil
	}
	// No sync here: with one per ack, acknowledgements cost the drain
	// more CPU than reading the segments it sends (issue 16's profile).
	// Badger has written the entry to its log before Update returns.
	err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(idKey(prefixCursor, st.id), u64(through)) })
	s.ackUnsynced.Store(true)
	if err != nil {
		return fmt.Errorf("storage ack %s through %d: %w", stream, through, err)
	}
	st.cursor.Store(through)
	return nil
}

// Cursor implements Outbox.
func (s *Store) Cursor(stream string) (uint64, error) {
	st, err := s.stream(stream)
	if err != nil {
		return 0, err
	}
	return st.cursor.Load(), nil
}

// Backlog implements Outbox.
func (s *Store) Backlog(stream string) (Backlog, error) {
	st, err := s.stream(stream)
	if err != nil {
		return Backlog{}, err
	}
	return s.backlog(st)
}

func (s *Store) backlog(st *Stream) (Backlog, error) {
	var b Backlog
	cursor := st.cursor.Load()
	s.statsMu.Lock()
	for _, bk := range st.buckets {
		n, bytes := bk.unsynced(cursor)
		b.Records += n
		b.Bytes += bytes
	}
	s.statsMu.Unlock()
	if b.Records == 0 {
		return b, nil
	}
	recs, err := s.Read(st.name, cursor, 1, 0)
	if err != nil || len(recs) == 0 {
		return b, err
	}
	r := recs[0]
	wall, mono := s.clock.Now()
	b.OldestWall = r.Wall
	if r.Boot == s.boot {
		b.OldestAge = mono - r.Mono
	} else {
		b.OldestAge = max(wall.Sub(r.Wall), 0)
	}
	return b, nil
}

// Stats is the store's state for status reports and telemetry.
type Stats struct {
	Dir     string
	Boot    uint32
	Streams []StreamStats // highest priority first

	DiskBytes     int64 // allocated to the data directory at the last check
	DiskPeakBytes int64 // the most seen since Open
	SlackBytes    int64 // Badger's mapped files may still grow by this
	FreeBytes     int64 // available on the file system at the last check
	QuotaBytes    int64
	HeadroomBytes int64
	CheckedAt     time.Time
	// Refusing is the reason Append refuses records now (disk short of
	// headroom, or far over quota), or 0.
	Refusing GapReason

	QueuedRecords int
	QueuedBytes   int64
	Evictions     uint64 // eviction rounds since Open
	LastError     error  // the last write or check error, nil once a write succeeds again
	LastErrorAt   time.Time
	Recovery      *Recovery
}

// StreamStats is one stream's part of Stats.
type StreamStats struct {
	Name     string
	Priority Priority
	Assigned uint64 // highest sequence number given out
	Durable  uint64 // highest durable sequence number
	Cursor   uint64 // highest acknowledged
	// DurableLag is the records accepted but not yet durable: what a
	// power loss now would lose (the RPO of the group commit).
	DurableLag uint64
	Backlog    Backlog
	Dropped    map[GapReason]uint64 // records dropped since Open, by reason
	Evicted    uint64               // unsynced records evicted since Open
	Gaps       uint64               // gap records written since Open
}

// Stats returns the store's figures.
func (s *Store) Stats() Stats {
	out := Stats{
		Dir: s.cfg.Dir, Boot: s.boot, QuotaBytes: s.cfg.QuotaBytes, HeadroomBytes: s.cfg.HeadroomBytes,
		Refusing:      GapReason(s.refuse.Load()),
		QueuedRecords: len(s.queue), QueuedBytes: s.queuedBytes.Load(), Recovery: s.recovery,
	}
	s.statsMu.Lock()
	out.DiskBytes, out.DiskPeakBytes, out.SlackBytes, out.FreeBytes = s.stats.diskBytes, s.stats.diskPeak, s.stats.slack, s.stats.freeBytes
	out.CheckedAt, out.Evictions = s.stats.checkedAt, s.stats.evictions
	out.LastError, out.LastErrorAt = s.stats.lastErr, s.stats.lastErrAt
	s.statsMu.Unlock()
	for _, st := range s.streams {
		ss := StreamStats{
			Name: st.name, Priority: st.prio, Assigned: st.assigned.Load(), Durable: st.durable.Load(), Cursor: st.cursor.Load(),
			Evicted: st.evicted.Load(), Gaps: st.gaps.Load(), Dropped: map[GapReason]uint64{},
		}
		ss.DurableLag = ss.Assigned - ss.Durable
		for r := range st.dropped {
			if n := st.dropped[r].Load(); n > 0 {
				ss.Dropped[GapReason(r)] = n
			}
		}
		if b, err := s.backlog(st); err == nil {
			ss.Backlog = b
		} else if !errors.Is(err, ErrClosed) && out.LastError == nil {
			out.LastError = err
		}
		out.Streams = append(out.Streams, ss)
	}
	return out
}

// ReadSegments returns the durable segments of stream from the one that
// holds sequence number after+1 (or, past a hole, the next one), in
// order, stopping before maxBytes of stored bytes (but always returning
// one if there is one). The first may begin at or before after: a caller
// that wants only later records must read those with Read. Each segment's
// value checksum is checked; its body is checked when it is decoded.
// The segments own their bytes.
func (s *Store) ReadSegments(stream string, after uint64, maxBytes int) ([]record.Segment, error) {
	var out []record.Segment
	bytes := 0
	err := s.VisitSegments(stream, after, func(sg record.Segment) (bool, error) {
		if len(out) > 0 && bytes+len(sg.Stored) > maxBytes {
			return false, nil
		}
		sg.Stored = append([]byte(nil), sg.Stored...)
		out = append(out, sg)
		bytes += len(sg.Stored)
		return true, nil
	})
	return out, err
}

// VisitSegments calls fn with the durable segments of stream that
// ReadSegments would return, one at a time and in order, until fn says
// to stop or fails (its error is returned, wrapped). A segment's Stored
// bytes are Badger's, valid only until fn returns: fn copies what it
// keeps. The drain packs them straight into a batch that way, without a
// copy of its own.
func (s *Store) VisitSegments(stream string, after uint64, fn func(record.Segment) (bool, error)) error {
	st, err := s.stream(stream)
	if err != nil {
		return err
	}
	durable := st.durable.Load()
	if after >= durable {
		return nil
	}
	err = s.segmentsFrom(st, after, durable, func(last uint64, v []byte) (bool, error) {
		sv, err := parseSegment(last, v)
		if err != nil {
			return false, err
		}
		return fn(record.Segment{First: sv.first, Last: sv.last, Flate: sv.comp == compressionFlate,
			BodyLen: sv.bodyLen, BodyCRC: sv.bodyCRC, Stored: sv.stored})
	})
	if err != nil {
		return fmt.Errorf("storage read segments %s after %d: %w", stream, after, err)
	}
	return nil
}

// segmentsFrom calls fn with the value of each segment of st from the one
// holding after+1 (or, past a hole, the next one) through durable, in
// order, until fn says to stop or fails. The value is Badger's: fn must
// copy what it keeps.
func (s *Store) segmentsFrom(st *Stream, after, durable uint64, fn func(last uint64, v []byte) (bool, error)) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = streamPrefix(st.id)
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		// Segments are keyed by their last seq: the first key at or after
		// that of after+1 is the segment holding it, or the next one.
		for it.Seek(appendRecordKey(nil, st.id, st.bucketRecords, after+1)); it.Valid(); it.Next() {
			_, _, last, err := parseRecordKey(it.Item().Key())
			if err != nil {
				return err
			}
			if last > durable {
				return nil
			}
			more := true
			err = it.Item().Value(func(v []byte) error {
				var err error
				more, err = fn(last, v)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s/%d: %w", st.name, last, err)
			}
			if !more {
				return nil
			}
		}
		return nil
	})
}
