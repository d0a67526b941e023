package storage

import (
	"time"

	"github.com/vigil-av/vigil/internal/clock"
)

// stamps gives records their timestamps from the store's clock: the wall
// time, which may jump, and the time since Open, which never goes
// backwards (the system clock's readings carry a monotonic reading, which
// Sub uses). The store reads it under a stream's lock, once per record.
type stamps struct {
	c     clock.Clock
	start time.Time
}

func (s stamps) Now() (wall time.Time, mono time.Duration) {
	t := s.c.Now()
	return t, t.Sub(s.start)
}
