// Package mqttsub holds what every MQTT client of Vigil does with paho
// after connecting: subscribe and check the broker's answer, and, when
// that fails on a reconnect, drop the connection so that paho dials
// again.
package mqttsub

import (
	"context"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Subscribe subscribes c to filters (each at its QoS) with handler h (nil:
// the routes already added to c) and waits up to timeout for the SUBACK. It is an error when none comes,
// when paho reports one, or when the broker refuses a filter (return code
// 0x80, typically its ACL), which paho does not count as an error.
func Subscribe(c mqtt.Client, filters map[string]byte, h mqtt.MessageHandler, timeout time.Duration) error {
	t := c.SubscribeMultiple(filters, h)
	if !t.WaitTimeout(timeout) {
		return fmt.Errorf("no SUBACK from the broker within %v", timeout)
	}
	if err := t.Error(); err != nil {
		return err
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code > 2 {
				return fmt.Errorf("the broker refused the subscription to %s (code %#x; its ACL?)", f, code)
			}
		}
	}
	return nil
}

// Redialer drops a client's connection and connects it again, on a
// goroutine it owns: paho reconnects only after a loss it sees itself, and
// a connection whose subscription failed is no use. Its owner closes it
// before disconnecting the client for good, so that no redial connects a
// client that is closing and none outlives the owner. The zero value is
// ready to use.
type Redialer struct {
	mu     sync.Mutex
	closed bool
	stop   chan struct{} // closed by Close; made by the first Redial
	wg     sync.WaitGroup
}

// The redial's pace: the DISCONNECT's grace, and the waits between
// attempts to connect.
const (
	redialQuiesce = 250 // milliseconds
	redialMin     = 500 * time.Millisecond
	redialMax     = 10 * time.Second
)

// Redial drops c's connection and connects it again in the background,
// trying until a connection is made or the Redialer is closed. After
// Close it does nothing.
func (r *Redialer) Redial(c mqtt.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.stop == nil {
		r.stop = make(chan struct{})
	}
	r.wg.Add(1)
	go r.redial(c, r.stop)
}

// redial disconnects c and connects it again. paho's Disconnect returns
// after its grace even when the client is still disconnecting, and
// Connect then fails (it starts only from disconnected): so it is tried
// again, as is a connection the broker refused or that timed out.
func (r *Redialer) redial(c mqtt.Client, stop <-chan struct{}) {
	defer r.wg.Done()
	c.Disconnect(redialQuiesce)
	for wait := redialMin; ; wait = min(2*wait, redialMax) {
		t := r.connect(c)
		if t == nil {
			return
		}
		select {
		case <-t.Done():
			if t.Error() == nil {
				return
			}
		case <-stop:
			return
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-stop:
			timer.Stop()
			return
		}
	}
}

// connect starts connecting c, unless the Redialer is closed (nil then).
// Connect only starts connecting: holding the lock makes Close wait for
// it, so the owner's Disconnect comes after.
func (r *Redialer) connect(c mqtt.Client) mqtt.Token {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	return c.Connect()
}

// Close stops further redials, ends the one in progress and waits for
// it, until ctx ends.
func (r *Redialer) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed && r.stop != nil {
		close(r.stop)
	}
	r.closed = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt redial still in progress: %w", ctx.Err())
	}
}
