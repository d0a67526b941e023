package edge

import (
	"sync"
	"time"
)

// bucket is a token bucket of payload bytes: rate bytes a second, up to
// burst. The drain loop takes from it before each publication; Publish
// forces its bytes through, possibly into debt.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

// newBucket returns a full bucket. burst is at least one byte.
func newBucket(rate, burst int, now time.Time) *bucket {
	b := float64(max(burst, 1))
	return &bucket{rate: float64(rate), burst: b, tokens: b, last: now}
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// take spends n bytes if the bucket holds them; otherwise it spends
// nothing and says how long until it will (n is capped at the burst, so
// a wait always ends).
func (b *bucket) take(n int, now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	need := min(float64(n), b.burst)
	if b.tokens >= need {
		b.tokens -= float64(n)
		return true, 0
	}
	wait := time.Duration((need - b.tokens) / b.rate * float64(time.Second))
	return false, max(wait, time.Millisecond)
}

// force spends n bytes, into debt if need be.
func (b *bucket) force(n int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens -= float64(n)
}
