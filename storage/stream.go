package storage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/vigil-av/vigil/storage/record"
)

// Stream is the handle of one stream: producers append through it.
type Stream struct {
	store         *Store
	name          string
	id            uint8
	prio          Priority
	bucketRecords uint64

	// mu orders sequence numbers with queue order: a sequence number is
	// given out and its record queued under mu, so a stream's records sit
	// in the queue in sequence order and the writer writes them so.
	mu     sync.Mutex
	next   uint64 // the sequence number the next record gets
	closed bool
	// pending counts drops not yet recorded in a gap record, by reason.
	pending [numReasons]uint64

	assigned atomic.Uint64 // highest sequence number given out
	durable  atomic.Uint64 // highest sequence number made durable
	cursor   atomic.Uint64 // highest sequence number acknowledged by sync

	dropped [numReasons]atomic.Uint64 // records dropped since Open, by reason
	evicted atomic.Uint64             // unsynced records evicted since Open
	gaps    atomic.Uint64             // gap records queued since Open

	// buckets lists the stream's buckets on disk, oldest first; guarded by
	// store.statsMu, changed only by the writer.
	buckets []bucketInfo

	// seg collects the records of the next segment: the writer's own.
	seg builder
}

const numReasons = int(record.MaxGapReason) + 1

// entry is a queued record: its header and payload, which the writer
// seals into a segment.
type entry struct {
	st  *Stream
	seq uint64
	buf *[]byte
}

// Name returns the stream's name.
func (st *Stream) Name() string { return st.name }

// Priority returns the stream's eviction priority.
func (st *Stream) Priority() Priority { return st.prio }

// Append queues a copy of payload as the stream's next record and returns
// its sequence number. It never waits for the disk or for the writer: if
// the queue is full, the disk is short of headroom even after eviction, or
// payload is larger than MaxRecordBytes, the record is dropped, ok is
// false, and the drop is counted and later recorded as a gap record in the
// stream (a dropped record gets no sequence number, so the stream stays
// contiguous). After Close, Append returns ok false without counting.
//
// The caller may reuse payload as soon as Append returns. The record is
// durable once WaitDurable(ctx, seq) returns nil or Durable() >= seq.
func (st *Stream) Append(payload []byte) (seq uint64, ok bool) {
	s := st.store
	if len(payload) > s.cfg.MaxRecordBytes {
		st.mu.Lock()
		if !st.closed {
			st.dropLocked(GapDroppedTooLarge)
		}
		st.mu.Unlock()
		return 0, false
	}
	n := headerLen + len(payload)
	bp := s.pool.get(n + crcLen)
	b := (*bp)[:n]
	copy(b[headerLen:], payload)

	st.mu.Lock()
	refuse := GapReason(s.refuse.Load())
	switch {
	case st.closed:
		st.mu.Unlock()
		s.pool.put(bp)
		return 0, false
	case refuse != 0:
		st.dropLocked(refuse)
		st.mu.Unlock()
		s.pool.put(bp)
		return 0, false
	case s.queuedBytes.Load()+int64(n) > int64(s.cfg.QueueBytes):
		st.dropLocked(GapDroppedQueueFull)
		st.mu.Unlock()
		s.pool.put(bp)
		return 0, false
	}
	wall, mono := s.clock.Now()
	putHeader(b, KindData, s.boot, mono, wall.UnixNano())
	*bp = b
	seq = st.next
	select {
	case s.queue <- entry{st: st, seq: seq, buf: bp}:
		st.next++
		st.assigned.Store(seq)
		s.queuedBytes.Add(int64(n))
		st.mu.Unlock()
		return seq, true
	default:
		st.dropLocked(GapDroppedQueueFull)
		st.mu.Unlock()
		s.pool.put(bp)
		return 0, false
	}
}

func (st *Stream) dropLocked(r GapReason) {
	st.pending[r]++
	st.dropped[r].Add(1)
}

// enqueueInternal queues a record the store writes itself (a gap record
// or a notice), ignoring Close, the refusal and the byte bound but not the
// queue's capacity. It reports whether the record was queued. The caller
// holds st.mu.
func (st *Stream) enqueueInternalLocked(kind Kind, payload []byte) (uint64, bool) {
	s := st.store
	b := make([]byte, headerLen+len(payload), headerLen+len(payload)+crcLen)
	copy(b[headerLen:], payload)
	wall, mono := s.clock.Now()
	putHeader(b, kind, s.boot, mono, wall.UnixNano())
	seq := st.next
	select {
	case s.queue <- entry{st: st, seq: seq, buf: &b}:
		st.next++
		st.assigned.Store(seq)
		s.queuedBytes.Add(int64(len(b)))
		return seq, true
	default:
		return 0, false
	}
}

func (st *Stream) enqueueInternal(kind Kind, payload []byte) (uint64, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.enqueueInternalLocked(kind, payload)
}

// recordDrops queues a gap record for each reason with uncounted drops,
// as far as the queue has room.
func (st *Stream) recordDrops() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for r := range st.pending {
		if st.pending[r] == 0 {
			continue
		}
		g := Gap{Count: st.pending[r], Reason: GapReason(r)}
		if _, ok := st.enqueueInternalLocked(KindGap, g.Encode()); !ok {
			return
		}
		st.pending[r] = 0
		st.gaps.Add(1)
	}
}

func (st *Stream) hasPendingDrops() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, n := range st.pending {
		if n > 0 {
			return true
		}
	}
	return false
}

// Durable returns the highest sequence number of the stream known to be
// durable: written and made durable by a group commit's db.Sync. Every
// record up to it survives kill -9 and power loss.
func (st *Stream) Durable() uint64 { return st.durable.Load() }

// Assigned returns the highest sequence number Append has given out.
func (st *Stream) Assigned() uint64 { return st.assigned.Load() }

// WaitDurable waits until the record with sequence number seq is durable,
// ctx ends, or the store closes without having made it durable.
func (st *Stream) WaitDurable(ctx context.Context, seq uint64) error {
	s := st.store
	for {
		if st.durable.Load() >= seq {
			return nil
		}
		if seq > st.assigned.Load() {
			return fmt.Errorf("wait for %s/%d: %w (highest is %d)", st.name, seq, ErrNotAssigned, st.assigned.Load())
		}
		ch := s.DurableChanged()
		if st.durable.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			if st.durable.Load() >= seq {
				return nil
			}
			return fmt.Errorf("wait for %s/%d: %w before it was durable", st.name, seq, ErrClosed)
		}
	}
}
