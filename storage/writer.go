package storage

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
)

// The writer is the one goroutine that writes records. It takes records
// from the queue for one SyncInterval after the first of a batch arrives
// (or until the batch is full), writes them with a WriteBatch, makes them
// durable with db.Sync, and then publishes the new durable watermarks. The
// same goroutine runs the disk checks, purges, evictions and value-log GC
// between batches, so none of them races with a batch.

// maxBatchBytes bounds one group commit.
func (s *Store) maxBatchBytes() int { return int(s.cfg.Badger.MemTableBytes / 2) }

func (s *Store) run(check clock.Ticker) {
	defer close(s.done)
	defer check.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	m := &s.maint
	for {
		select {
		case e := <-s.queue:
			s.take(e)
			s.collect(timer)
			s.commitRetrying(nil)
			s.afterCommit(m)
		case <-check.C():
			s.syncAcks()
			s.maintain(m, s.clk.Now())
			s.recordDrops() // also when refusals leave nothing to commit
		case <-s.stop:
			s.drain()
			return
		}
	}
}

// take accounts for an entry leaving the queue, adds it to its stream's
// segment and recycles its buffer.
func (s *Store) take(e entry) {
	s.queuedBytes.Add(-int64(len(*e.buf)))
	s.seg.add(e.st, e.seq, *e.buf)
	s.pool.put(e.buf)
}

// collect takes queued records until SyncInterval has passed since the
// first, the commit is full, or the store is closing. Segments that fill
// up are sealed (compressed) as they do, while the window is open.
//
// A commit is full at half the queue's records: waiting for the timer
// with more than that taken would leave less than half the queue for the
// records that arrive while the commit is written and synced, and a
// burst would be dropped that the disk could have taken.
func (s *Store) collect(timer *time.Timer) {
	timer.Reset(s.cfg.SyncInterval)
	defer timer.Stop()
	g := s.seg
	for g.recs < cap(s.queue)/2 && g.bytes < s.maxBatchBytes() {
		select {
		case e := <-s.queue:
			s.take(e)
		case <-timer.C:
			return
		case <-s.stop:
			return
		}
	}
}

// syncAcks syncs the cursors that Ack wrote since the last sync.
func (s *Store) syncAcks() {
	if !s.ackUnsynced.Swap(false) {
		return
	}
	if err := s.db.Sync(); err != nil {
		s.ackUnsynced.Store(true)
		s.log.Warn("storage: syncing acknowledged cursors failed; trying again at the next check", zap.Error(err))
	}
}

// takeQueued takes every record queued now, without waiting.
func (s *Store) takeQueued() {
	for n := len(s.queue); n > 0; n-- {
		s.take(<-s.queue)
	}
}

// afterCommit queues the gap records of recent drops and runs a disk check
// early when much has been written since the last.
func (s *Store) afterCommit(m *maintenance) {
	s.recordDrops()
	if m.written >= m.earlyCheckBytes {
		s.maintain(m, s.clk.Now())
	}
}

// recordDrops queues the gap records of drops not yet recorded.
func (s *Store) recordDrops() {
	for _, st := range s.streams {
		if st.hasPendingDrops() {
			st.recordDrops()
		}
	}
}

// drain commits what is queued, then the gap records of drops that
// happened before Close, and returns.
func (s *Store) drain() {
	s.takeQueued()
	s.commitRetrying(nil)
	for _, st := range s.streams {
		st.recordDrops()
	}
	s.takeQueued()
	s.commitRetrying(nil)
}

// commitRetrying seals the records taken since the last commit and
// commits them, retrying with backoff while the write fails, until it
// succeeds or Close gives up waiting. Meanwhile the queue fills and
// Append drops, counted. extra holds metadata writes that go with the
// records (a nil value deletes the key).
func (s *Store) commitRetrying(extra map[string][]byte) bool {
	g := s.seg
	segs := g.sealAll(s.streams)
	if len(segs) == 0 && len(extra) == 0 {
		return true
	}
	defer g.reset()
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.commit(segs, extra)
		if err == nil {
			if attempt > 1 {
				s.log.Warn("storage write recovered", zap.Int("attempts", attempt))
				s.clearErr()
			}
			return true
		}
		err = fmt.Errorf("storage write of %d records in %d segments: %w", g.recs, len(segs), err)
		s.setErr(err)
		if attempt == 1 || attempt%50 == 0 {
			s.log.Error("storage write failed; retrying", zap.Error(err), zap.Int("attempt", attempt))
		}
		select {
		case <-time.After(backoff):
		case <-s.abort:
			s.log.Error("storage write abandoned at close", zap.Error(err), zap.Int("records", g.recs))
			return false
		}
		backoff = min(2*backoff, time.Second)
	}
}

// commit writes segs and extra with a WriteBatch and syncs, then updates
// the durable watermarks, the bucket index and the waiters.
func (s *Store) commit(segs []segment, extra map[string][]byte) error {
	if s.hooks.beforeCommit != nil {
		s.hooks.beforeCommit()
	}
	last := map[*Stream]uint64{}
	s.writeMu.Lock()
	wb := s.db.NewWriteBatch()
	var err error
	for i := range segs {
		sg := &segs[i]
		if err = wb.Set(appendRecordKey(make([]byte, 0, keyLen), sg.st.id, sg.st.bucketRecords, sg.last), sg.value); err != nil {
			break
		}
		last[sg.st] = sg.last
	}
	if err == nil {
		for st, seq := range last {
			if err = wb.Set(idKey(prefixLast, st.id), u64(seq)); err != nil {
				break
			}
		}
	}
	if err == nil {
		for k, v := range extra {
			if v == nil {
				err = wb.Delete([]byte(k))
			} else {
				err = wb.Set([]byte(k), v)
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		wb.Cancel()
		s.writeMu.Unlock()
		return err
	}
	err = wb.Flush()
	if err == nil {
		s.ackUnsynced.Store(false) // this sync covers the cursors written so far
		if err = s.db.Sync(); err != nil {
			s.ackUnsynced.Store(true)
		}
	}
	s.writeMu.Unlock()
	if err != nil {
		return err
	}

	var written int64
	s.statsMu.Lock()
	for i := range segs {
		sg := &segs[i]
		n := int64(len(sg.value) + keyLen)
		written += n
		sg.st.buckets = addSegment(sg.st.buckets, sg.bucket, sg.first, sg.last, n, sg.firstWall)
	}
	s.statsMu.Unlock()
	for st, seq := range last {
		st.durable.Store(seq)
	}
	s.maint.written += written
	if len(last) > 0 {
		s.broadcast()
	}
	return nil
}

// wallOf reads the wall clock from an encoded record.
func wallOf(v []byte) int64 {
	if len(v) < headerLen {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v[14:]))
}
