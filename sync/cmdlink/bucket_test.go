package cmdlink

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := newBucket(2, 3)
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {0, true}, {0, true}, {0, false}, // the burst
		{400 * time.Millisecond, false}, // 0.8 of a token
		{500 * time.Millisecond, true},  // 1.0
		{500 * time.Millisecond, false},
		{10 * time.Second, true}, {10 * time.Second, true}, {10 * time.Second, true}, // refilled to the burst, no more
		{10 * time.Second, false},
		{9 * time.Second, false}, // a clock going back adds nothing
		{10*time.Second + 500*time.Millisecond, true},
	}
	for i, s := range steps {
		if got := b.take(t0.Add(s.at)); got != s.want {
			t.Errorf("step %d at %v: %v, want %v", i, s.at, got, s.want)
		}
	}
}
