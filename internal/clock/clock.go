// Package clock is how Vigil's shells read time: the wall clock and
// tickers, behind one small interface, so that the goroutines that own a
// ticker can be driven by a fake one in tests that advance time instead
// of sleeping. It imports only the standard library.
//
// Pure code (watchdog.Machine, the command verifier, batching) does not
// take a Clock: it is passed `now`. A Clock belongs to the shell around
// it, which reads it once per step and hands the reading in.
package clock

import "time"

// Clock is the time source of a shell.
type Clock interface {
	// Now is the current time. The real clock's readings carry a
	// monotonic reading, so Sub between two of them never goes
	// backwards.
	Now() time.Time
	// NewTicker ticks every d, like time.NewTicker; d must be positive.
	NewTicker(d time.Duration) Ticker
}

// Ticker delivers ticks on C until Stop.
type Ticker interface {
	C() <-chan time.Time
	// Stop ends the ticks; it does not close C.
	Stop()
}

// Real is the system clock.
func Real() Clock { return realClock{} }

// Or returns c, or the system clock when c is nil: for configurations
// whose zero value means the real clock.
func Or(c Clock) Clock {
	if c == nil {
		return Real()
	}
	return c
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }
