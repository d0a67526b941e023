package main

import (
	"net"
	"sync"
	"time"
)

// uplink emulates a vehicle's link to the broker: a TCP proxy on
// loopback whose vehicle-to-broker direction is limited to a rate, and,
// for the models suite, whose broker-to-vehicle direction may be too,
// with a one-way delay of half the round trip in each direction. Each
// connection through it gets the rates on its own. A direction holds at
// most about 150 KiB in the proxy (its queue below), so it carries at most
// that much per one-way delay: at 20 Mbit/s, beyond some 100 ms of round
// trip the proxy, not the rate, is the limit. In the sync suite both
// the raw publisher and the uploader go through it; the cloud side
// (ingester, subscribers) talks to the broker directly, as it would from
// a data centre.
type uplink struct {
	ln       net.Listener
	target   string
	rate     float64       // bytes per second, vehicle to broker; 0: unlimited
	downRate float64       // bytes per second, broker to vehicle; 0: unlimited
	delay    time.Duration // one way

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// startUplink starts a proxy to target limited to mbps towards it,
// unlimited back.
func startUplink(target string, mbps float64, rtt time.Duration) (*uplink, error) {
	return startLink(target, mbps, 0, rtt)
}

// startLink starts a proxy to target limited to upMbps towards it and to
// downMbps back (0: unlimited).
func startLink(target string, upMbps, downMbps float64, rtt time.Duration) (*uplink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &uplink{ln: ln, target: target, rate: upMbps * 1e6 / 8, downRate: downMbps * 1e6 / 8, delay: rtt / 2}
	u.wg.Add(1)
	go u.accept()
	return u, nil
}

// url is the broker's address through the uplink.
func (u *uplink) url() string { return "tcp://" + u.ln.Addr().String() }

func (u *uplink) close() {
	u.ln.Close()
	u.mu.Lock()
	for _, c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *uplink) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", u.target)
		if err != nil {
			c.Close()
			continue
		}
		u.mu.Lock()
		u.conns = append(u.conns, c, s)
		u.mu.Unlock()
		u.wg.Add(2)
		go u.pipe(s, c, u.rate)     // vehicle to broker: the uplink
		go u.pipe(c, s, u.downRate) // broker to vehicle
	}
}

// chunk is data read at a time, to be written after the delay.
type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst, each chunk no sooner than delay after it was
// read and, with a rate, no faster than rate bytes per second.
func (u *uplink) pipe(dst, src net.Conn, rate float64) {
	defer u.wg.Done()
	// A short queue, as a real link's buffer is: when it is full the
	// reader stops reading and TCP pushes back on the sender, instead of
	// the proxy swallowing everything and hiding the link's rate.
	q := make(chan chunk, 8)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 16<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	var next time.Time // when the link is free again
	for c := range q {
		if d := time.Until(c.at.Add(u.delay)); d > 0 {
			time.Sleep(d)
		}
		if rate > 0 {
			now := time.Now()
			if next.Before(now) {
				next = now
			}
			next = next.Add(time.Duration(float64(len(c.b)) / rate * float64(time.Second)))
			time.Sleep(time.Until(next))
		}
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	// Closing both ends ends the other direction too.
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	dst.Close()
	src.Close()
	for range q { // let the reader finish
	}
}
