package socket

import (
	"math"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/wire"
)

// TestEffectiveDeadlineEdges: absolute deadlines at the edges of the u64,
// with and without a budget, never overflow into the past.
func TestEffectiveDeadlineEdges(t *testing.T) {
	arrival := time.Unix(1000, 0)
	const now = uint64(5_000_000_000) // the monotonic clock reads 5 s
	budget := 20 * time.Millisecond
	cases := []struct {
		name   string
		budget time.Duration
		abs    uint64
		want   time.Duration // after arrival
	}{
		{"no absolute deadline", budget, 0, budget},
		{"neither field", 0, 0, 0},
		{"absolute at now", budget, now, 0},
		{"absolute before now", budget, 1, 0},
		{"absolute one ns ahead", budget, now + 1, time.Nanosecond},
		{"absolute before the budget", budget, now + uint64(5*time.Millisecond), 5 * time.Millisecond},
		{"absolute at the budget", budget, now + uint64(budget), budget},
		{"absolute 2^63-1", budget, math.MaxInt64, budget},
		{"absolute 2^63", budget, 1 << 63, budget},
		{"absolute 2^63+now", budget, 1<<63 + now, budget},
		{"absolute 2^64-1", budget, math.MaxUint64, budget},
		{"absolute alone, near", 0, now + uint64(7*time.Millisecond), 7 * time.Millisecond},
		{"absolute alone, 2^63", 0, 1 << 63, maxBudget},
		{"absolute alone, 2^64-1", 0, math.MaxUint64, maxBudget},
		{"absolute alone, passed", 0, now, 0},
	}
	for _, c := range cases {
		got := effectiveDeadline(arrival, c.budget, c.abs, now).Sub(arrival)
		if got != c.want {
			t.Errorf("%s: deadline %v after arrival, want %v", c.name, got, c.want)
		}
	}
}

// TestFarFutureAbsoluteDeadlineServed: through the socket, an absolute
// deadline of 2^63 or more is not taken for one long past.
func TestFarFutureAbsoluteDeadlineServed(t *testing.T) {
	h := &toyHandler{}
	s := startServer(t, h, nil)
	r := dialRaw(t, s.path)
	for i, abs := range []uint64{math.MaxInt64, 1 << 63, math.MaxUint64 - 1e9, math.MaxUint64} {
		id := uint64(i + 1)
		req := frameRequest(id, time.Minute)
		req.DeadlineMonoNS = abs
		r.sendMsg(id, req)
		if got, resp := r.readInfer(); got != id || resp.Status != wire.StatusOK {
			t.Errorf("deadline_mono_ns %d with a budget: request %d answered %+v", abs, got, resp)
		}
	}
	// An absolute deadline alone (budget_us 0) is a deadline, not "passed".
	req := frameRequest(9, 0)
	req.DeadlineMonoNS = math.MaxUint64
	r.sendMsg(9, req)
	if got, resp := r.readInfer(); got != 9 || resp.Status != wire.StatusOK {
		t.Errorf("absolute deadline alone: %+v", resp)
	}
	if st := s.Stats(); st.PassedOnArrival != 0 {
		t.Errorf("%d requests taken as passed on arrival", st.PassedOnArrival)
	}
}
