package storage

import "time"

// Clock gives records their timestamps. Tests pass a fake through
// WithClock; the store reads it under a stream's lock, once per record.
type Clock interface {
	// Now returns the wall-clock time, which may jump, and the monotonic
	// time since the clock was made, which never goes backwards.
	Now() (wall time.Time, mono time.Duration)
}

// SystemClock returns a Clock whose monotonic time counts from now. Open
// makes one, so a record's Mono is the time since its boot's Open.
func SystemClock() Clock { return systemClock{start: time.Now()} }

type systemClock struct{ start time.Time }

func (c systemClock) Now() (time.Time, time.Duration) {
	t := time.Now()
	return t, t.Sub(c.start)
}
