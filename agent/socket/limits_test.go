package socket

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/wire"
)

func TestAllowListRefusesPeer(t *testing.T) {
	me := uint32(os.Getuid())
	s := startServer(t, &toyHandler{}, func(c *ServerConfig) {
		c.AllowUIDs = []uint32{me + 12345} // not us, and not root either:
		c.AllowGIDs = []uint32{me + 23456} // a list makes nobody implicit
	})
	r := dialRaw(t, s.path)
	id, e := r.readError()
	if id != 0 || e.Code != wire.CodeNotPermitted || !e.Close || !strings.Contains(e.Message, "is not on vigild's allow-list") {
		t.Fatalf("got id %d %+v", id, e)
	}
	r.expectClosed()

	// The client's error says what to do.
	c := dialClient(t, s.path)
	_, err := c.Infer(context.Background(), clientFrame(1, 0))
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != client.CodeNotPermitted || !se.Closed || !strings.Contains(err.Error(), "ask the vehicle's administrator") {
		t.Fatalf("client: %v", err)
	}
	if st := s.Stats(); st.Refused != 2 || st.Accepted != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestAllowListAdmits(t *testing.T) {
	cases := map[string]func(*ServerConfig){
		"default (own uid and root)": nil,
		"by uid":                     func(c *ServerConfig) { c.AllowUIDs = []uint32{uint32(os.Getuid())} },
		"by gid":                     func(c *ServerConfig) { c.AllowGIDs = []uint32{uint32(os.Getegid())} },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, &toyHandler{}, edit)
			c := dialClient(t, s.path)
			if _, err := c.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSupplementaryGroups(t *testing.T) {
	dir := t.TempDir()
	status := "Name:\tsupervisor\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t24 27 4242 \nVmPeak:\t1 kB\n"
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	old := procStatus
	procStatus = func(int32) string { return filepath.Join(dir, "status") }
	defer func() { procStatus = old }()

	p := Peer{PID: 1, UID: 1000, GID: 1000}
	if !(allowList{gids: []uint32{4242}}).allows(&p) {
		t.Errorf("a peer in supplementary group 4242 was refused")
	}
	if len(p.Groups) != 3 {
		t.Errorf("groups %v", p.Groups)
	}
	if (allowList{gids: []uint32{5}, uids: []uint32{0}}).allows(&Peer{PID: 1, UID: 1000, GID: 1000}) {
		t.Errorf("a peer in none of the groups was allowed")
	}
	if (allowList{uids: []uint32{0}}).allows(&Peer{PID: 1, UID: 1000, GID: 0}) {
		t.Errorf("gid 0 was allowed by a uid-only list")
	}
}

func TestIdleClientClosed(t *testing.T) {
	s := startServer(t, &toyHandler{}, func(c *ServerConfig) { c.IdleTimeout = 300 * time.Millisecond })
	r := dialRaw(t, s.path)
	t0 := time.Now()
	id, e := r.readError() // bounded by waitLimit
	if id != 0 || e.Code != wire.CodeIdleTimeout || !e.Close {
		t.Fatalf("got id %d %+v", id, e)
	}
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
	r.expectClosed()

	// A connection that keeps talking is not idle, however long it lives.
	r2 := dialRaw(t, s.path)
	for i := range 6 {
		r2.sendMsg(uint64(i+1), &wire.Ping{})
		if f := r2.readFrame(); f.h.Type != wire.TypePong {
			t.Fatalf("ping %d: got %s", i, f.h.Type)
		}
		time.Sleep(60 * time.Millisecond) // 360 ms in all, past the idle timeout
	}
	if st := s.Stats(); st.IdleTimeouts != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestClientThatNeverReads: a client pipelines requests with big answers
// and reads none. The server is not blocked: another connection is served
// meanwhile, and the stuck one is closed after the write timeout.
func TestClientThatNeverReads(t *testing.T) {
	h := &toyHandler{outputSize: 1 << 20}
	s := startServer(t, h, func(c *ServerConfig) { c.WriteTimeout = 200 * time.Millisecond })
	stuck := dialRaw(t, s.path)
	var reqs []byte
	for i := range 2 {
		reqs, _ = wire.AppendFrame(reqs, uint64(i+1), frameRequest(uint64(i), time.Minute))
	}
	// Each 1 MiB answer is more than the socket buffers hold. The server
	// may close the connection before all of this is written: ignore that.
	stuck.nc.Write(reqs)
	eventually(t, "the server to start answering", func() bool { return h.calls.Load() >= 1 })
	c := dialClient(t, s.path)
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		resp, err := c.Infer(ctx, clientFrame(uint64(i), 0))
		cancel()
		if err != nil || !resp.OK() {
			t.Fatalf("healthy client, request %d: %v", i, err)
		}
	}
	eventually(t, "the stuck client to be closed", func() bool { return s.Stats().WriteTimeouts == 1 })
	// Its connection is gone: reading drains what was written, then ends.
	stuck.nc.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.Copy(io.Discard, stuck.nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("stuck client: %v", err)
	}
}

func TestTooManyConnections(t *testing.T) {
	s := startServer(t, &toyHandler{}, func(c *ServerConfig) { c.MaxConnections = 2 })
	a, b := dialClient(t, s.path), dialClient(t, s.path)
	for _, c := range []*client.Client{a, b} {
		if _, err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r := dialRaw(t, s.path)
	id, e := r.readError()
	if id != 0 || e.Code != wire.CodeTooManyConnections || !e.Close || !strings.Contains(e.Message, "2 connections") {
		t.Fatalf("third connection: id %d %+v", id, e)
	}
	r.expectClosed()
	// Once one leaves, a new one is served.
	a.Close()
	eventually(t, "the closed connection to be forgotten", func() bool { return s.Stats().Connections == 1 })
	c := dialClient(t, s.path)
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTooManyInFlight(t *testing.T) {
	entered := make(chan uint64, 4)
	release := make(chan struct{})
	h := &toyHandler{gate: func(ctx context.Context, seq uint64) {
		entered <- seq
		select {
		case <-release:
		case <-ctx.Done():
		}
	}}
	s := startServer(t, h, func(c *ServerConfig) { c.MaxInFlight = 2 })
	r := dialRaw(t, s.path)
	r.sendMsg(1, frameRequest(1, time.Minute))
	r.sendMsg(2, frameRequest(2, time.Minute))
	recv(t, entered, "request 1 or 2 in the handler")
	recv(t, entered, "request 1 or 2 in the handler")
	r.sendMsg(3, frameRequest(3, time.Minute))
	r.sendMsg(4, &wire.StatusRequest{}) // status requests count too
	for _, want := range []uint64{3, 4} {
		id, e := r.readError()
		if id != want || e.Code != wire.CodeTooManyInFlight || e.Close || e.Message != "too many in flight: 2" {
			t.Fatalf("got id %d %+v, want TOO_MANY_IN_FLIGHT for %d", id, e, want)
		}
	}
	// PING is not a request in flight: answered at once.
	r.sendMsg(5, &wire.Ping{})
	if f := r.readFrame(); f.h.Type != wire.TypePong || f.h.ID != 5 {
		t.Fatalf("ping: %+v", f.h)
	}
	close(release)
	got := map[uint64]bool{}
	for range 2 {
		id, resp := r.readInfer()
		got[id] = resp.Status == wire.StatusOK
	}
	if !got[1] || !got[2] {
		t.Fatalf("answers %v", got)
	}
	r.sendMsg(6, frameRequest(6, time.Minute))
	recv(t, entered, "request 6 in the handler")
	if id, resp := r.readInfer(); id != 6 || resp.Status != wire.StatusOK {
		t.Fatalf("after the limit: id %d %+v", id, resp)
	}
}
