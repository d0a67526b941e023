package mqtttest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy on a loopback port in front of a broker, for
// failures a broker cannot stage on its own: a connection severed
// abruptly (the broker sees the socket reset, no DISCONNECT), a client
// that dies for good, bytes that vanish in one direction. It forwards
// bytes as they are, so TLS passes through it.
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	down, up atomic.Bool // drop what flows to the client, to the broker

	mu     sync.Mutex
	conns  map[*proxied]struct{}
	killed bool
	wg     sync.WaitGroup
}

type proxied struct{ client, server net.Conn }

// NewProxy starts a proxy to target (host:port); it is closed when the
// test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: proxy listen: %v", err)
	}
	p := &Proxy{t: t, ln: ln, target: target, conns: map[*proxied]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { p.Kill(); p.wg.Wait() })
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is tcp://Addr, or ssl://Addr when tls.
func (p *Proxy) URL(tls bool) string {
	if tls {
		return "ssl://" + p.Addr()
	}
	return "tcp://" + p.Addr()
}

// Conns is how many connections the proxy carries now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			reset(c)
			continue
		}
		pc := &proxied{client: c, server: s}
		p.mu.Lock()
		if p.killed {
			p.mu.Unlock()
			reset(c)
			reset(s)
			continue
		}
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, c, s, &p.down) // broker to client
		go p.pipe(pc, s, c, &p.up)   // client to broker
	}
}

// pipe copies from src to dst, dropping the bytes while drop is set.
func (p *Proxy) pipe(pc *proxied, dst, src net.Conn, drop *atomic.Bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !drop.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if err == io.EOF {
				// A clean close on one side closes the other.
				dst.Close()
			}
			p.mu.Lock()
			delete(p.conns, pc)
			p.mu.Unlock()
			src.Close()
			return
		}
	}
}

// reset closes c with a TCP reset (linger 0).
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) //nolint:errcheck
	}
	c.Close()
}

// Sever resets every connection the proxy carries, on both sides, as a
// crash or a cable pulled would, and lifts the blackhole; new
// connections are accepted.
func (p *Proxy) Sever() {
	p.mu.Lock()
	p.down.Store(false)
	p.up.Store(false)
	conns := p.conns
	p.conns = map[*proxied]struct{}{}
	p.mu.Unlock()
	for pc := range conns {
		reset(pc.client)
		reset(pc.server)
	}
}

// Kill severs every connection and refuses new ones from now on: the
// client behind the proxy is gone for the broker, for good.
func (p *Proxy) Kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Sever()
}

// Blackhole makes the proxy drop, from now on, the bytes flowing to the
// client (down) and to the broker (up), while the connections stay open.
// The byte streams are broken once anything was dropped: Sever them
// afterwards.
func (p *Proxy) Blackhole(down, up bool) {
	p.down.Store(down)
	p.up.Store(up)
}
