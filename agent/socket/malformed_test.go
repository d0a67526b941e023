package socket

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/wire"
)

// rawHeader builds a header by hand, so that it can be wrong.
func rawHeader(magic string, version, typ byte, id uint64, length, reserved uint32) []byte {
	b := make([]byte, wire.HeaderSize)
	copy(b, magic)
	b[4], b[5] = version, typ
	binary.LittleEndian.PutUint64(b[8:], id)
	binary.LittleEndian.PutUint32(b[16:], length)
	binary.LittleEndian.PutUint32(b[20:], reserved)
	return b
}

// TestMalformedFramesClose covers the frames after which the stream cannot
// be trusted: each gets a closing ERROR frame, then the connection ends.
func TestMalformedFramesClose(t *testing.T) {
	s := startServer(t, &toyHandler{}, func(c *ServerConfig) { c.MaxPayload = 1 << 20 })
	cases := []struct {
		name   string
		bytes  []byte
		halfUp bool // close our write side after sending
		code   wire.ErrorCode
		id     uint64
		msg    string
	}{
		{name: "bad magic", bytes: rawHeader("VGIX", 1, 1, 7, 0, 0), code: wire.CodeBadMagic, msg: "bad magic"},
		{name: "HTTP on the socket", bytes: []byte("GET / HTTP/1.1\r\nHost: vigil\r\n\r\n"), code: wire.CodeBadMagic},
		{name: "unknown version", bytes: rawHeader("VGIL", 2, 1, 7, 0, 0), code: wire.CodeUnsupportedVersion, msg: "unsupported protocol version: 2"},
		{name: "reserved header bytes", bytes: rawHeader("VGIL", 1, 1, 7, 0, 5), code: wire.CodeMalformedHeader},
		{name: "length beyond the configured limit", bytes: rawHeader("VGIL", 1, 1, 7, 1<<20+1, 0), code: wire.CodeFrameTooLarge, id: 7,
			msg: "payload of 1048577 bytes, the limit is 1048576"},
		{name: "length beyond the protocol's limit", bytes: rawHeader("VGIL", 1, 1, 8, 0xffffffff, 0), code: wire.CodeFrameTooLarge, id: 8},
		{name: "truncated payload then EOF", bytes: append(rawHeader("VGIL", 1, 1, 9, 100, 0), make([]byte, 10)...), halfUp: true,
			code: wire.CodeTruncated, msg: "the stream ended inside a frame"},
		{name: "truncated header then EOF", bytes: rawHeader("VGIL", 1, 1, 9, 100, 0)[:10], halfUp: true, code: wire.CodeTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, s.path)
			r.send(tc.bytes)
			if tc.halfUp {
				if err := r.nc.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			id, e := r.readError()
			if e.Code != tc.code || !e.Close || id != tc.id || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("got id %d %+v, want %s (close) id %d with %q", id, e, tc.code, tc.id, tc.msg)
			}
			r.expectClosed()
		})
	}
	eventually(t, "every malformed connection to be closed", func() bool { return s.Stats().Connections == 0 })
}

// TestBadRequestsKeepConnection covers problems that leave the framing
// intact: an ERROR for that id, and the connection goes on.
func TestBadRequestsKeepConnection(t *testing.T) {
	h := &toyHandler{}
	s := startServer(t, h, nil)
	r := dialRaw(t, s.path)

	// An unknown type with a sane length: its payload is skipped.
	r.send(append(rawHeader("VGIL", 1, 42, 11, 16, 0), make([]byte, 16)...))
	// A type only the server sends.
	r.sendMsg(12, &wire.InferResponse{Status: wire.StatusNoResult, Reason: wire.ReasonMRM})
	// A payload that breaks the layout: a tensor of an unknown dtype.
	bad := append(make([]byte, 24), 1, 0, 8, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(bad[16:], 1000)
	bad[20] = 1
	r.send(append(rawHeader("VGIL", 1, 1, 13, uint32(len(bad)), 0), bad...))
	// A payload shorter than its own layout.
	r.send(append(rawHeader("VGIL", 1, 1, 14, 8, 0), make([]byte, 8)...))
	// Request id 0.
	r.sendMsg(0, frameRequest(1, time.Minute))
	// A control request of the wrong size.
	r.send(append(rawHeader("VGIL", 1, 5, 15, 8, 0), make([]byte, 8)...))
	// A status request with a payload.
	r.send(append(rawHeader("VGIL", 1, 3, 16, 1, 0), 1))

	want := []struct {
		id   uint64
		code wire.ErrorCode
		msg  string
	}{
		{11, wire.CodeUnsupportedType, "unsupported message type type(42)"},
		{12, wire.CodeUnsupportedType, "unsupported message type INFER_RESPONSE"},
		{13, wire.CodeInvalidRequest, "tensor 0: unsupported dtype 8"},
		{14, wire.CodeInvalidRequest, "truncated"},
		{0, wire.CodeInvalidRequest, "request id 0"},
		{15, wire.CodeInvalidRequest, "truncated"},
		{16, wire.CodeInvalidRequest, "STATUS_REQUEST with a payload"},
	}
	// Requests are answered concurrently, so errors from workers may pass
	// one another; match by id.
	got := map[uint64]wire.ErrorFrame{}
	for range want {
		id, e := r.readError()
		got[id] = e
	}
	for _, w := range want {
		e, ok := got[w.id]
		if !ok || e.Code != w.code || e.Close || !strings.Contains(e.Message, w.msg) {
			t.Errorf("id %d: got %+v, want %s (kept) with %q", w.id, e, w.code, w.msg)
		}
	}
	r.sendMsg(20, frameRequest(20, time.Minute))
	if id, resp := r.readInfer(); id != 20 || resp.Status != wire.StatusOK {
		t.Fatalf("after bad requests: id %d %+v", id, resp)
	}
	if n := h.calls.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want once (for the good request)", n)
	}
}

// TestMalformedDoesNotDisturbOthers runs a healthy client while another
// connection sends garbage over and over.
func TestMalformedDoesNotDisturbOthers(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	c := dialClient(t, s.path)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		garbage := [][]byte{
			rawHeader("XXXX", 1, 1, 1, 0, 0),
			rawHeader("VGIL", 9, 1, 1, 0, 0),
			rawHeader("VGIL", 1, 1, 1, 0xffffff00, 0),
			append(rawHeader("VGIL", 1, 1, 1, 64, 0), 1, 2, 3),
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := dialRaw(t, s.path)
			r.send(garbage[i%len(garbage)])
			if i%len(garbage) == 3 {
				r.nc.CloseWrite()
			}
			r.readError()
			r.expectClosed()
			r.nc.Close()
		}
	})
	for i := range 100 {
		resp, err := c.Infer(context.Background(), clientFrame(uint64(i), 1))
		if err != nil || !resp.OK() || resp.FrameSeq != uint64(i) {
			t.Fatalf("healthy request %d: %v %+v", i, err, resp)
		}
	}
	close(stop)
	wg.Wait()
}
