package clock

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// TestFakeTicksInOrder: two tickers fire at their own times, earliest
// first, and the clock reads each tick's time while it is received.
func TestFakeTicksInOrder(t *testing.T) {
	f := NewFake(t0)
	a, b := f.NewTicker(3*time.Second), f.NewTicker(2*time.Second)
	type tick struct {
		who  string
		at   time.Duration
		read time.Duration
	}
	got := make(chan tick, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			select {
			case at := <-a.C():
				got <- tick{"a", at.Sub(t0), f.Now().Sub(t0)}
			case at := <-b.C():
				got <- tick{"b", at.Sub(t0), f.Now().Sub(t0)}
			}
		}
	}()
	f.Advance(6 * time.Second)
	<-done
	close(got)
	want := []tick{{"b", 2 * time.Second, 2 * time.Second}, {"a", 3 * time.Second, 3 * time.Second}, {"b", 4 * time.Second, 4 * time.Second}, {"a", 6 * time.Second, 6 * time.Second}, {"b", 6 * time.Second, 6 * time.Second}}
	i := 0
	for g := range got {
		// The clock reads a tick's time or later: the reader is told
		// of the tick before Advance moves on.
		if g.who != want[i].who || g.at != want[i].at || g.read < want[i].read {
			t.Errorf("tick %d: %+v, want %+v", i, g, want[i])
		}
		i++
	}
	if now := f.Now(); !now.Equal(t0.Add(6 * time.Second)) {
		t.Errorf("now %v after Advance(6s)", now)
	}
	a.Stop()
	b.Stop()
	if f.Tickers() != 0 {
		t.Errorf("%d tickers after Stop", f.Tickers())
	}
}

// TestFakeStopReleasesAdvance: a tick nobody reads does not hold Advance
// once its ticker stops.
func TestFakeStopReleasesAdvance(t *testing.T) {
	f := NewFake(t0)
	tk := f.NewTicker(time.Second)
	advanced := make(chan struct{})
	go func() { f.Advance(time.Second); close(advanced) }()
	tk.Stop()
	<-advanced
	f.Advance(time.Hour) // no ticker left: returns at once
	if got := f.Now().Sub(t0); got != time.Hour+time.Second {
		t.Errorf("clock at +%v", got)
	}
}

func TestRealTicker(t *testing.T) {
	c := Or(nil)
	tk := c.NewTicker(time.Millisecond)
	defer tk.Stop()
	before := c.Now()
	if at := <-tk.C(); at.Before(before.Add(-time.Second)) {
		t.Errorf("tick at %v, clock read %v before", at, before)
	}
}
