package clock

import (
	"sync"
	"time"
)

// Fake is a Clock that moves only when told to. Its tickers fire during
// Advance, in time order, and each tick is handed over synchronously:
// Advance returns only when every tick due has been received by its
// reader (or its ticker stopped). A test that advances the clock past a
// shell's tick therefore knows the shell has taken the tick, and, on its
// next Advance, that it has finished the step the tick started.
//
// A ticker whose reader does not come back to it blocks Advance; stop it
// (as its owner's Close does) to release Advance.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTicker makes a ticker whose first tick is d after the current fake
// time.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTicker{f: f, c: make(chan time.Time), stop: make(chan struct{}), every: d, next: f.now.Add(d)}
	f.tickers = append(f.tickers, t)
	return t
}

// Tickers is how many tickers are running.
func (f *Fake) Tickers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tickers)
}

// Advance moves the clock d forward. Every tick due on the way fires at
// its own time, earliest first (ties in creation order): the clock reads
// that time while the tick is handed over. Advance returns when the clock
// reads the old time plus d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	f.mu.Unlock()
	for {
		f.mu.Lock()
		t := f.due(end)
		if t == nil {
			if end.After(f.now) {
				f.now = end
			}
			f.mu.Unlock()
			return
		}
		at := t.next
		f.now = at
		t.next = at.Add(t.every)
		f.mu.Unlock()
		select {
		case t.c <- at:
		case <-t.stop:
		}
	}
}

// due is the running ticker that fires first at or before end, or nil.
func (f *Fake) due(end time.Time) *fakeTicker {
	var first *fakeTicker
	for _, t := range f.tickers {
		if !t.next.After(end) && (first == nil || t.next.Before(first.next)) {
			first = t
		}
	}
	return first
}

type fakeTicker struct {
	f     *Fake
	c     chan time.Time
	stop  chan struct{}
	once  sync.Once
	every time.Duration
	next  time.Time // guarded by f.mu
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }

func (t *fakeTicker) Stop() {
	t.once.Do(func() {
		close(t.stop)
		t.f.mu.Lock()
		defer t.f.mu.Unlock()
		for i, x := range t.f.tickers {
			if x == t {
				t.f.tickers = append(t.f.tickers[:i], t.f.tickers[i+1:]...)
				break
			}
		}
	})
}
