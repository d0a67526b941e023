package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// The drill hooks: a drill cuts the link on purpose (HoldDown, Release)
// or has it lose the broker as a broker crash would (DropConnection).
// Unused, they cost one pointer kept per connection.

// errHeldDown is the dial's error while the link is held down.
var errHeldDown = errors.New("edge: link held down by a drill")

// drillLink is the state the hooks share with the dial and the link loop.
type drillLink struct {
	mu   sync.Mutex
	held chan struct{} // closed by Release; nil while the link is not held down
	conn net.Conn      // the socket of the last connection opened; nil if none (or not ours)
	own  bool          // the uploader opens its sockets itself (dial)
}

// HoldDown cuts the link and keeps it down until Release, as a lost
// cellular link would: the connection's socket is closed under paho (no
// DISCONNECT: the broker publishes the vehicle's will once it notices),
// and no new connection is attempted, SyncNow notwithstanding. Records
// keep going to the store and wait there. Holding a link already held
// does nothing.
func (u *Uploader) HoldDown() {
	u.drill.mu.Lock()
	if u.drill.held == nil {
		u.drill.held = make(chan struct{})
	}
	u.drill.mu.Unlock()
	u.cut()
	u.log.Warn("link held down (drill)")
}

// Release lets a link held down by HoldDown connect again at once and
// drain what piled up. Releasing a link not held does nothing.
func (u *Uploader) Release() {
	u.drill.mu.Lock()
	held := u.drill.held
	u.drill.held = nil
	u.drill.mu.Unlock()
	if held != nil {
		close(held)
		u.log.Warn("link released (drill)")
	}
}

// DropConnection closes the connection's socket under paho, as a broker
// that crashed would leave it: no DISCONNECT is sent, paho sees the
// connection lost, and the link reconnects as after any loss. It reports
// whether a connection was open to drop.
func (u *Uploader) DropConnection() bool {
	if !u.cli().IsConnectionOpen() {
		return false
	}
	u.cut()
	u.log.Warn("connection dropped (drill)")
	return true
}

// cut closes the current connection's socket. When the uploader does not
// open its sockets itself (a scheme dial leaves to paho), it disconnects
// instead, which sends a DISCONNECT.
func (u *Uploader) cut() {
	u.drill.mu.Lock()
	c, own := u.drill.conn, u.drill.own
	u.drill.conn = nil
	u.drill.mu.Unlock()
	switch {
	case c != nil:
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn() // no close_notify either
		}
		// Shut the socket down rather than close it: paho takes a read
		// on a closed socket for its own Disconnect and would not see
		// the connection lost; a shut socket reads end of file.
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseRead()  //nolint:errcheck // best effort: paho's reader sees the end
			tc.CloseWrite() //nolint:errcheck // the broker sees the end, without a DISCONNECT
		} else {
			c.Close() //nolint:errcheck // not a TCP socket: what else
		}
	case !own:
		if cl := u.cli(); cl.IsConnectionOpen() {
			cl.Disconnect(0)
			u.signalLost()
		}
	}
}

// heldDown returns the channel Release closes, nil when not held.
func (u *Uploader) heldDown() <-chan struct{} {
	u.drill.mu.Lock()
	defer u.drill.mu.Unlock()
	return u.drill.held
}

// waitHeld waits while the link is held down; false when the uploader
// closes meanwhile.
func (u *Uploader) waitHeld() bool {
	for {
		held := u.heldDown()
		if held == nil {
			return true
		}
		u.state.Store(int32(Offline))
		select {
		case <-held:
		case <-u.stop:
			return false
		}
	}
}

// ownDial makes the uploader open its connections itself (dial) for the
// schemes it can open as paho would — plain TCP and TLS without a proxy
// in all_proxy — so that the drill hooks hold their sockets. Other
// schemes are left to paho.
func (u *Uploader) ownDial(opts *mqtt.ClientOptions, broker string) {
	b, err := url.Parse(broker)
	if err != nil {
		return
	}
	switch b.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		if os.Getenv("all_proxy") != "" {
			return
		}
	default:
		return
	}
	u.drill.own = true
	opts.SetCustomOpenConnectionFn(u.dial)
}

// dial opens a connection's socket as paho would, and keeps it for the
// drill hooks; it refuses while the link is held down.
func (u *Uploader) dial(b *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	if u.heldDown() != nil {
		return nil, errHeldDown
	}
	d := o.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: o.ConnectTimeout}
	}
	var c net.Conn
	var err error
	switch b.Scheme {
	case "tcp", "mqtt":
		c, err = proxy.FromEnvironmentUsing(d).Dial("tcp", b.Host)
	default:
		c, err = tls.DialWithDialer(d, "tcp", b.Host, o.TLSConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("edge: dial %s: %w", b.Host, err)
	}
	u.drill.mu.Lock()
	defer u.drill.mu.Unlock()
	if u.drill.held != nil { // held down while dialling
		c.Close()
		return nil, errHeldDown
	}
	u.drill.conn = c
	return c, nil
}
