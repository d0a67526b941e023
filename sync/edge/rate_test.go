package edge

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBucket(1000, 500, t0) // 1000 B/s, burst 500
	if ok, _ := b.take(500, t0); !ok {
		t.Fatal("a full bucket refused its burst")
	}
	ok, wait := b.take(100, t0)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("empty bucket: %v, wait %v; want refused, 100ms", ok, wait)
	}
	if ok, _ := b.take(100, t0.Add(100*time.Millisecond)); !ok {
		t.Fatal("refused after the wait it gave")
	}
	// Refill is capped at the burst.
	if ok, _ := b.take(501, t0.Add(time.Hour)); !ok {
		t.Fatal("a request over the burst never passes a full bucket")
	}
	if ok, wait := b.take(1, t0.Add(time.Hour)); ok || wait < time.Millisecond {
		t.Fatalf("in debt after an oversize take: %v, %v", ok, wait)
	}
	// force goes into debt: the next take waits for it.
	b2 := newBucket(1000, 500, t0)
	b2.force(1500, t0)
	ok, wait = b2.take(500, t0)
	if ok || wait != 1500*time.Millisecond {
		t.Fatalf("after a forced 1500: %v, wait %v; want refused, 1.5s", ok, wait)
	}
	// Over a long run, bytes taken never exceed burst + rate * elapsed.
	b3 := newBucket(1000, 100, t0)
	now, taken := t0, 0
	for range 10000 {
		if ok, w := b3.take(37, now); ok {
			taken += 37
		} else {
			now = now.Add(w)
		}
	}
	if limit := 100 + int(now.Sub(t0).Seconds()*1000); taken > limit+1 {
		t.Fatalf("took %d bytes in %v; the cap allows %d", taken, now.Sub(t0), limit)
	}
}
