package storage

import (
	"sync"

	"go.uber.org/zap"
)

// drillFull is SimulateDiskFull's state, shared with the disk check.
type drillFull struct {
	mu       sync.Mutex
	on       bool
	measured GapReason // the last disk check's own refusal, 0 for none
}

// SimulateDiskFull makes Append refuse records as it does when the disk is
// short of headroom even after eviction (GapDroppedDiskFull: counted in
// Stats' Dropped, recorded later as gap records, and reported in
// Refusing), until SimulateDiskFull(false); it is for drills. Nothing
// stored is touched: records taken before keep being written and
// uploaded. Turned off, the refusal is what the last disk check found
// (none on a healthy disk). Unused, it costs the disk check a lock.
func (s *Store) SimulateDiskFull(on bool) {
	s.drill.mu.Lock()
	defer s.drill.mu.Unlock()
	if s.drill.on == on {
		return
	}
	s.drill.on = on
	if on {
		s.refuse.Store(uint32(GapDroppedDiskFull))
		s.log.Warn("storage refusing appends: a drill makes the disk read as full")
		return
	}
	s.refuse.Store(uint32(s.drill.measured))
	s.log.Info("storage drill over: the disk reads as it is", zap.Stringer("refusing", s.drill.measured))
}

// swapRefuse sets the refusal the disk check found (measured), or the
// drill's while one runs, and returns the one it replaced and the one in
// force now.
func (s *Store) swapRefuse(measured GapReason) (old, now GapReason) {
	s.drill.mu.Lock()
	defer s.drill.mu.Unlock()
	s.drill.measured, now = measured, measured
	if s.drill.on {
		now = GapDroppedDiskFull
	}
	return GapReason(s.refuse.Swap(uint32(now))), now
}
