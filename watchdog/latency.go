package watchdog

import "time"

// latencyRingSize is how many recent latencies of a backend the estimate
// looks at.
const latencyRingSize = 32

// latencyRing keeps the most recent latencies of one backend.
type latencyRing struct {
	buf  [latencyRingSize]time.Duration
	next int // index the next sample goes to
	n    int // samples held, up to latencyRingSize
}

func (r *latencyRing) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	r.buf[r.next] = d
	r.next = (r.next + 1) % latencyRingSize
	if r.n < latencyRingSize {
		r.n++
	}
}

func (r *latencyRing) reset() { *r = latencyRing{} }

// p95 returns the 95th percentile (nearest rank) of the held latencies, or
// initial when there are none.
func (r *latencyRing) p95(initial time.Duration) time.Duration {
	if r.n == 0 {
		return initial
	}
	var s [latencyRingSize]time.Duration
	copy(s[:], r.buf[:r.n])
	v := s[:r.n]
	for i := 1; i < len(v); i++ { // insertion sort: at most 32 values
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
	// Nearest rank: the smallest value with at least 95% of samples at or
	// below it, rank = ceil(0.95*n), computed in integers.
	rank := (95*len(v) + 99) / 100
	return v[rank-1]
}
