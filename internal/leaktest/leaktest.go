// Package leaktest is goleak's VerifyTestMain for the packages whose
// tests run MQTT clients: it fails the package when a goroutine outlives
// its tests, as goleak does, but gives paho's reconnect goroutine the
// time to return on its own.
//
// A paho client whose connection was lost reconnects on a goroutine that
// sleeps out a backoff (up to the client's maximum reconnect interval)
// before it looks at the client's status again; Disconnect cannot wake
// it, and paho offers no way to wait for it. Once its client is
// disconnected it returns when its sleep ends. VerifyTestMain waits for
// that, up to Grace, while those are the only goroutines left; any other
// goroutine fails the package at once, and so does a reconnect goroutine
// still there after Grace (a client nobody closed).
package leaktest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Grace is how long paho's goroutines get to end after the tests: more
// than the longest maximum reconnect interval in Vigil (10 s).
const Grace = 15 * time.Second

// pahoBackoff names the goroutines of a disconnected paho client that end
// on their own once their backoff sleep is over: the reconnect loop, and
// Disconnect's own goroutine, which waits for it.
var pahoBackoff = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/eclipse/paho%2emqtt%2egolang.(*client).reconnect"),
	goleak.IgnoreAnyFunction("github.com/eclipse/paho%2emqtt%2egolang.(*client).Disconnect.func1"),
}

// VerifyTestMain runs m and exits with its code, or 1 when goroutines
// outlive the tests (see the package comment); opts are goleak's, for the
// goroutines the package is allowed to leave.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		if err := find(opts); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func find(opts []goleak.Option) error {
	end := time.Now().Add(Grace)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return nil
		}
		if other := goleak.Find(append(opts, pahoBackoff...)...); other != nil {
			return other
		}
		if time.Now().After(end) {
			return fmt.Errorf("paho still reconnecting %v after the tests (a client nobody disconnected?): %w", Grace, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
