package edge

import (
	"testing"
	"time"
)

const ms = time.Millisecond

func TestRTOBeforeSamples(t *testing.T) {
	if got := newRTO(250*ms, 10*time.Second).timeout(); got != time.Second {
		t.Errorf("initial %v, want 1s", got)
	}
	if got := newRTO(250*ms, 400*ms).timeout(); got != 400*ms {
		t.Errorf("initial under a 400ms cap: %v", got)
	}
	if got := newRTO(2*time.Second, 10*time.Second).timeout(); got != 2*time.Second {
		t.Errorf("initial over a 2s floor: %v", got)
	}
	if got := newRTO(time.Hour, time.Minute).timeout(); got != time.Minute {
		t.Errorf("a floor over the cap: %v, want the cap", got)
	}
}

// The RFC 6298 arithmetic, sample by sample.
func TestRTOSamples(t *testing.T) {
	r := newRTO(10*ms, 10*time.Second)
	steps := []struct {
		rtt, srtt, rttvar, timeout time.Duration
	}{
		{100 * ms, 100 * ms, 50 * ms, 300 * ms},                  // SRTT=R, RTTVAR=R/2
		{100 * ms, 100 * ms, 37500 * time.Microsecond, 250 * ms}, // RTTVAR 3/4 of 50
		{300 * ms, 125 * ms, 78125 * time.Microsecond, 437500 * time.Microsecond},
		{120 * ms, 124375 * time.Microsecond, 59843750, 363750 * time.Microsecond}, // |125-120|=5: RTTVAR (3*78.125+5)/4
	}
	for i, s := range steps {
		r.sample(s.rtt)
		if r.srtt != s.srtt || r.rttvar != s.rttvar || r.timeout() != s.timeout {
			t.Fatalf("after sample %d (%v): SRTT %v RTTVAR %v timeout %v, want %v %v %v", i+1, s.rtt, r.srtt, r.rttvar, r.timeout(), s.srtt, s.rttvar, s.timeout)
		}
	}
}

func TestRTOFloorAndCap(t *testing.T) {
	r := newRTO(250*ms, 2*time.Second)
	for range 50 {
		r.sample(2 * ms) // loopback: SRTT+4 RTTVAR tends to 2 ms
	}
	if got := r.timeout(); got != 250*ms {
		t.Errorf("steady 2ms round trips: %v, want the 250ms floor", got)
	}
	r = newRTO(250*ms, 2*time.Second)
	r.sample(5 * time.Second)
	if got := r.timeout(); got != 2*time.Second {
		t.Errorf("a 5s round trip: %v, want the 2s cap", got)
	}
}

// The timeout doubles once per round of expiries while nothing is
// acknowledged, up to the cap; an ack or a sample ends the backoff.
func TestRTOBackoff(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRTO(250*ms, 10*time.Second)
	r.sample(100 * ms) // timeout 300 ms
	if got := r.timeout(); got != 300*ms {
		t.Fatalf("timeout %v", got)
	}
	// A window of four sent at t0 and lost: all expire at t0+300ms, and
	// the timeout doubles once.
	at := t0.Add(300 * ms)
	for range 4 {
		r.expired(t0, at)
	}
	if got := r.timeout(); got != 600*ms {
		t.Fatalf("after one round of four expiries: %v, want 600ms", got)
	}
	// Resent at `at`, lost again: 1.2 s, 2.4, 4.8, 9.6, then the cap.
	want := []time.Duration{1200 * ms, 2400 * ms, 4800 * ms, 9600 * ms, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		next := at.Add(r.timeout())
		r.expired(at, next)
		r.expired(at, next) // a second batch of the same round
		at = next
		if got := r.timeout(); got != w {
			t.Fatalf("round %d: %v, want %v", i+2, got, w)
		}
	}
	r.acked()
	if got := r.timeout(); got != 300*ms {
		t.Fatalf("after an ack: %v, want 300ms", got)
	}
	r.expired(at, at.Add(time.Second))
	r.sample(100 * ms)
	if got := r.timeout(); got != 250*ms { // RTTVAR 3/4 of 50 ms: 100+4*37.5
		t.Fatalf("after a sample: %v, want 250ms", got)
	}
}
