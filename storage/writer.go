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
	var batch []entry
	for {
		select {
		case e := <-s.queue:
			batch = s.collect(append(batch[:0], s.take(e)), timer)
			s.commitRetrying(batch, nil)
			batch = clearBatch(batch)
			s.afterCommit(m)
		case <-check.C():
			s.maintain(m, s.clk.Now())
			s.recordDrops() // also when refusals leave nothing to commit
		case <-s.stop:
			s.drain()
			return
		}
	}
}

// take accounts for an entry leaving the queue and seals it with its CRC.
func (s *Store) take(e entry) entry {
	s.queuedBytes.Add(-int64(len(*e.buf)))
	*e.buf = appendCRC(*e.buf)
	return e
}

// collect adds queued records to batch until SyncInterval has passed since
// the first, the batch is full, or the store is closing.
func (s *Store) collect(batch []entry, timer *time.Timer) []entry {
	timer.Reset(s.cfg.SyncInterval)
	defer timer.Stop()
	bytes := len(*batch[0].buf)
	for len(batch) < cap(s.queue) && bytes < s.maxBatchBytes() {
		select {
		case e := <-s.queue:
			batch = append(batch, s.take(e))
			bytes += len(*e.buf)
		case <-timer.C:
			return batch
		case <-s.stop:
			return batch
		}
	}
	return batch
}

// takeQueued appends to batch every record queued now, without waiting.
func (s *Store) takeQueued(batch []entry) []entry {
	for n := len(s.queue); n > 0; n-- {
		batch = append(batch, s.take(<-s.queue))
	}
	return batch
}

func clearBatch(b []entry) []entry {
	clear(b)
	return b[:0]
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
	batch := s.takeQueued(nil)
	s.commitRetrying(batch, nil)
	for _, st := range s.streams {
		st.recordDrops()
	}
	batch = s.takeQueued(clearBatch(batch))
	s.commitRetrying(batch, nil)
}

// commitRetrying commits batch, retrying with backoff while the write
// fails, until it succeeds or Close gives up waiting. Meanwhile the queue
// fills and Append drops, counted. extra holds metadata writes that go
// with the batch (a nil value deletes the key).
func (s *Store) commitRetrying(batch []entry, extra map[string][]byte) bool {
	if len(batch) == 0 && len(extra) == 0 {
		return true
	}
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.commit(batch, extra)
		if err == nil {
			if attempt > 1 {
				s.log.Warn("storage write recovered", zap.Int("attempts", attempt))
				s.clearErr()
			}
			return true
		}
		err = fmt.Errorf("storage write of %d records: %w", len(batch), err)
		s.setErr(err)
		if attempt == 1 || attempt%50 == 0 {
			s.log.Error("storage write failed; retrying", zap.Error(err), zap.Int("attempt", attempt))
		}
		select {
		case <-time.After(backoff):
		case <-s.abort:
			s.log.Error("storage write abandoned at close", zap.Error(err), zap.Int("records", len(batch)))
			return false
		}
		backoff = min(2*backoff, time.Second)
	}
}

// commit writes batch and extra with a WriteBatch and syncs, then updates
// the durable watermarks, the bucket index and the waiters.
func (s *Store) commit(batch []entry, extra map[string][]byte) error {
	if s.hooks.beforeCommit != nil {
		s.hooks.beforeCommit()
	}
	keys := make([]byte, 0, len(batch)*keyLen)
	last := map[*Stream]uint64{}
	s.writeMu.Lock()
	wb := s.db.NewWriteBatch()
	var err error
	for i := range batch {
		e := &batch[i]
		k := appendRecordKey(keys[len(keys):], e.st.id, e.st.bucketRecords, e.seq)
		keys = keys[:len(keys)+keyLen]
		if err = wb.Set(k, *e.buf); err != nil {
			break
		}
		last[e.st] = e.seq
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
		err = s.db.Sync()
	}
	s.writeMu.Unlock()
	if err != nil {
		return err
	}

	var written int64
	s.statsMu.Lock()
	for i := range batch {
		e := &batch[i]
		n := int64(len(*e.buf) + keyLen)
		written += n
		e.st.buckets = addRecord(e.st.buckets, e.seq/e.st.bucketRecords, e.seq, n, wallOf(*e.buf))
	}
	s.statsMu.Unlock()
	for st, seq := range last {
		st.durable.Store(seq)
	}
	for i := range batch {
		s.pool.put(batch[i].buf)
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
