package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// maintenance is the writer's schedule for disk checks, purges and GC.
type maintenance struct {
	nextPurge, nextGC time.Time
	// written counts bytes committed since the last disk check; past
	// earlyCheckBytes the writer checks without waiting for the ticker, so
	// that a burst cannot outrun the check however fast it writes.
	written, earlyCheckBytes int64
}

func newMaintenance(now time.Time, cfg Config) maintenance {
	return maintenance{
		nextPurge:       now.Add(cfg.PurgeInterval),
		nextGC:          now.Add(cfg.GCInterval),
		earlyCheckBytes: max(min(cfg.HeadroomBytes/8, cfg.QuotaBytes/16), 1<<20),
	}
}

// usage is one measurement of the disk.
type usage struct {
	// Allocated is the space allocated to the files in Dir (st_blocks),
	// what the quota counts.
	Allocated int64
	// Slack is how much Badger's sparse, memory-mapped files may still grow
	// without a write call that could fail: apparent size less allocated.
	Slack int64
	// Free is the space available on Dir's file system (statfs f_bavail).
	Free int64

	OverQuota bool // Allocated > QuotaBytes - compaction reserve
	DiskLow   bool // Free - Slack < HeadroomBytes
}

// statfsFree is the production statfs: bytes available to unprivileged
// users on dir's file system.
func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func (s *Store) measure() (usage, error) {
	var u usage
	err := filepath.WalkDir(s.cfg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file Badger deleted meanwhile
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		alloc := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			alloc = int64(st.Blocks) * 512
		}
		u.Allocated += alloc
		if info.Size() > alloc {
			u.Slack += info.Size() - alloc
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("measure %s: %w", s.cfg.Dir, err)
	}
	statfs := statfsFree
	if s.hooks.statfs != nil {
		statfs = s.hooks.statfs
	}
	if u.Free, err = statfs(s.cfg.Dir); err != nil {
		return u, err
	}
	u.OverQuota = u.Allocated > s.softQuota()
	u.DiskLow = u.Free-u.Slack < s.cfg.HeadroomBytes
	return u, nil
}

func (s *Store) remeasure(u usage) usage {
	if v, err := s.measure(); err == nil {
		s.recordUsage(v)
		return v
	}
	return u
}

func (s *Store) recordUsage(u usage) {
	s.statsMu.Lock()
	s.stats.diskBytes, s.stats.slack, s.stats.freeBytes = u.Allocated, u.Slack, u.Free
	s.stats.diskPeak = max(s.stats.diskPeak, u.Allocated)
	s.stats.checkedAt = s.clk.Now()
	s.statsMu.Unlock()
}

// maintain checks the disk; purges acknowledged buckets when due or short
// of space; evicts when over the quota or short of headroom; refuses
// appends while that was not enough; and runs value-log GC when due.
func (s *Store) maintain(m *maintenance, now time.Time) {
	m.written = 0
	u, err := s.measure()
	if err != nil {
		s.setErr(err)
		s.log.Warn("storage disk check failed", zap.Error(err))
		return
	}
	s.recordUsage(u)
	short := u.OverQuota || u.DiskLow
	if short || !now.Before(m.nextPurge) {
		m.nextPurge = now.Add(s.cfg.PurgeInterval)
		if s.purgeAcked() > 0 && short {
			u = s.remeasure(u)
		}
	}
	if u.OverQuota || u.DiskLow {
		reason := GapEvictedQuota
		if u.DiskLow {
			reason = GapEvictedDisk
		}
		if s.evict(reason, s.evictionNeed(u)) {
			u = s.remeasure(u)
		}
	}
	var refuse GapReason
	switch {
	case u.DiskLow:
		refuse = GapDroppedDiskFull
	case u.Allocated >= s.cfg.QuotaBytes+s.cfg.HeadroomBytes/2:
		refuse = GapDroppedOverQuota
	}
	if old, cur := s.swapRefuse(refuse); old != cur {
		refuse = cur
		if refuse != 0 {
			s.log.Warn("storage refusing appends", zap.Stringer("reason", refuse),
				zap.Int64("disk_bytes", u.Allocated), zap.Int64("free_bytes", u.Free), zap.Int64("slack_bytes", u.Slack))
		} else {
			s.log.Info("storage taking appends again", zap.Int64("disk_bytes", u.Allocated), zap.Int64("free_bytes", u.Free))
		}
	}
	if s.hooks.afterCheck != nil {
		s.hooks.afterCheck(u)
	}
	if !now.Before(m.nextGC) {
		m.nextGC = now.Add(s.cfg.GCInterval)
		s.gc()
	}
}

// softQuota is where eviction starts: the quota less the compaction
// reserve.
func (s *Store) softQuota() int64 { return s.cfg.QuotaBytes - s.cfg.compactionReserve() }

// evictionNeed estimates the record bytes to evict: enough to bring the
// buffer 10% under its soft quota and the free space 10% over the
// headroom, scaled from disk bytes to record bytes by the buffer's
// current ratio.
func (s *Store) evictionNeed(u usage) int64 {
	var excess int64
	if u.OverQuota {
		excess = u.Allocated - (s.softQuota() - s.softQuota()/10)
	}
	if u.DiskLow {
		excess = max(excess, s.cfg.HeadroomBytes+s.cfg.HeadroomBytes/10-(u.Free-u.Slack))
	}
	var logical int64
	s.statsMu.Lock()
	for _, st := range s.streams {
		for _, b := range st.buckets {
			logical += b.bytes
		}
	}
	s.statsMu.Unlock()
	if u.Allocated <= 0 || logical <= 0 {
		return max(excess, 1)
	}
	return max(int64(float64(excess)*float64(logical)/float64(u.Allocated)), 1)
}

// purgeAcked deletes the buckets whose records the sync has all
// acknowledged, and returns how many it deleted.
func (s *Store) purgeAcked() int {
	var prefixes [][]byte
	drop := map[*Stream][]uint64{}
	s.statsMu.Lock()
	for _, st := range s.streams {
		cur := st.cursor.Load()
		for _, b := range st.buckets {
			if b.last > cur {
				break
			}
			drop[st] = append(drop[st], b.id)
			prefixes = append(prefixes, bucketPrefix(st.id, b.id))
		}
	}
	s.statsMu.Unlock()
	if len(prefixes) == 0 {
		return 0
	}
	s.writeMu.Lock()
	s.drops.Add(1)
	err := s.db.DropPrefix(prefixes...)
	s.writeMu.Unlock()
	if err == nil {
		s.gcRatio(dropGCRatio)
	}
	if err != nil {
		s.setErr(fmt.Errorf("purge acknowledged records: %w", err))
		s.log.Error("storage purge failed", zap.Error(err))
		return 0
	}
	s.statsMu.Lock()
	for st, ids := range drop {
		st.buckets = removeBuckets(st.buckets, ids)
	}
	s.statsMu.Unlock()
	return len(prefixes)
}

// evict deletes the oldest buckets of the lowest-priority streams, about
// need bytes, and reports whether it deleted any. For each stream it
// first makes durable, in one group commit, a gap record saying what goes
// and an intent naming the buckets (so that Open finishes a drop a crash
// interrupted); then it drops the buckets.
func (s *Store) evict(reason GapReason, need int64) bool {
	var cands []candidate
	s.statsMu.Lock()
	for _, st := range s.streams {
		if len(st.buckets) > 1 {
			cands = append(cands, candidate{st: st, prio: st.prio, cursor: st.cursor.Load(), buckets: append([]bucketInfo(nil), st.buckets...)})
		}
	}
	s.statsMu.Unlock()
	victims := chooseVictims(cands, need, reason)
	if len(victims) == 0 {
		return false
	}
	extra := map[string][]byte{}
	var ready []victim
	for _, v := range victims {
		if v.gap.Count > 0 {
			if _, ok := v.st.enqueueInternal(KindGap, v.gap.Encode()); !ok {
				continue // no room for the gap record: not this time
			}
			v.st.gaps.Add(1)
		}
		extra[string(idKey(prefixEvict, v.st.id))] = encodeBucketList(v.buckets)
		ready = append(ready, v)
	}
	if len(ready) == 0 {
		return false
	}
	s.takeQueued()
	if !s.commitRetrying(extra) {
		return false
	}
	var prefixes [][]byte
	for _, v := range ready {
		for _, id := range v.buckets {
			prefixes = append(prefixes, bucketPrefix(v.st.id, id))
		}
	}
	s.writeMu.Lock()
	s.drops.Add(1)
	err := s.db.DropPrefix(prefixes...)
	if err == nil {
		err = s.db.Update(func(txn *badger.Txn) error {
			for k := range extra {
				if err := txn.Delete([]byte(k)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	s.writeMu.Unlock()
	if err == nil {
		s.gcRatio(dropGCRatio)
	}
	if err != nil {
		s.setErr(fmt.Errorf("evict: %w", err))
		s.log.Error("storage eviction failed; Open will finish it", zap.Error(err))
		return false
	}
	s.statsMu.Lock()
	for _, v := range ready {
		v.st.buckets = removeBuckets(v.st.buckets, v.buckets)
	}
	s.stats.evictions++
	s.statsMu.Unlock()
	for _, v := range ready {
		v.st.evicted.Add(v.gap.Count)
		s.log.Warn("storage evicted records",
			zap.String("stream", v.st.name), zap.Stringer("reason", reason),
			zap.Int("buckets", len(v.buckets)), zap.Int64("bytes", v.bytes),
			zap.Uint64("gap_first", v.gap.First), zap.Uint64("gap_last", v.gap.Last), zap.Uint64("unsynced", v.gap.Count))
	}
	return true
}

func encodeBucketList(ids []uint64) []byte {
	var b []byte
	for _, id := range ids {
		b = append(b, u64(id)...)
	}
	return b
}

func decodeBucketList(b []byte) ([]uint64, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("bucket list of %d bytes", len(b))
	}
	ids := make([]uint64, 0, len(b)/8)
	for i := 0; i < len(b); i += 8 {
		id, _ := getU64(b[i : i+8])
		ids = append(ids, id)
	}
	return ids, nil
}

// dropGCRatio is the dead share at which value-log GC rewrites a file
// right after a purge or an eviction.
const dropGCRatio = 0.2

// gc runs Badger's value-log GC until it has nothing to rewrite (at most a
// few rounds, to bound the pause of the writer).
func (s *Store) gc() { s.gcRatio(0.5) }

// gcRatio is gc rewriting value-log files at least r dead. After a drop it
// runs with a low r: the dropped segments of one stream are spread over
// files shared with the others, and space that stays taken makes the
// next check evict more.
func (s *Store) gcRatio(r float64) {
	for range 8 {
		err := s.db.RunValueLogGC(r)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			s.log.Warn("storage value-log GC failed", zap.Error(err))
		}
		return
	}
}
