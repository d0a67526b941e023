package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 10 * time.Second

// docExample returns the bytes of the hex block after the line starting
// with title in docs/protocol.md: on each line, after an optional label,
// the hex bytes ("|" separates fields) up to the first other word.
func docExample(t *testing.T, title string) []byte {
	t.Helper()
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	i := 0
	for i < len(lines) && !strings.HasPrefix(lines[i], title) {
		i++
	}
	for i < len(lines) && lines[i] != "```" {
		i++
	}
	var out []byte
	for _, l := range lines[i+1:] {
		if l == "```" {
			return out
		}
		for j, f := range strings.Fields(l) {
			if f == "|" {
				continue
			}
			b, err := hex.DecodeString(f)
			if err != nil || len(b) != 1 {
				if j == 0 {
					continue
				}
				break
			}
			out = append(out, b[0])
		}
	}
	t.Fatalf("no example %q in docs/protocol.md", title)
	return nil
}

// TestDocExamples checks this client against the document alone.
func TestDocExamples(t *testing.T) {
	req := &InferRequest{FrameSeq: 7, Inputs: []Tensor{{Name: "x", DType: Float32, Shape: []int64{1, 3}, Float32: []float32{1, 2, 3}}}}
	got, err := appendInferRequest(nil, 1, req, 20000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := docExample(t, "**INFER_REQUEST**"); !bytes.Equal(got, want) {
		t.Errorf("INFER_REQUEST:\n%s\nthe document has\n%s", hex.Dump(got), hex.Dump(want))
	}

	b := docExample(t, "**INFER_RESPONSE**")
	h, err := parseHeader(b)
	if err != nil || h.typ != typeInferResponse || h.id != 1 || int(h.length) != len(b)-headerSize {
		t.Fatalf("header %+v: %v", h, err)
	}
	var resp InferResponse
	if err := decodeInferResponse(b[headerSize:], &resp, nil); err != nil {
		t.Fatal(err)
	}
	if !resp.OK() || resp.ServedBy != Primary || resp.Total != 850*time.Microsecond || resp.FrameSeq != 7 ||
		resp.Model != "pilotnet" || resp.Version != "1.0.0" || resp.Detail != "" {
		t.Errorf("response %+v", resp)
	}
	p, s, d := resp.Backends[0], resp.Backends[1], resp.Backends[2]
	if !p.Started || !p.Finished || p.Outcome != OutcomeOK || p.Latency != 812*time.Microsecond ||
		!s.Started || s.Finished || s.Outcome != OutcomeRunning || s.Latency != 815*time.Microsecond ||
		d.Started || d.Outcome != OutcomeNotPlanned {
		t.Errorf("backends %+v", resp.Backends)
	}
	y := resp.Output("y")
	if y == nil || y.DType != Float32 || len(y.Shape) != 2 || y.Float32[0] != 0.25 {
		t.Errorf("output %+v", y)
	}

	b = docExample(t, "**ERROR**")
	h, _ = parseHeader(b)
	code, flags, msg, err := decodeCodeText(b[headerSize:])
	if err != nil || h.typ != typeError || h.id != 9 || code != CodeTooManyInFlight || flags != 0 || msg != "too many in flight: 8" {
		t.Errorf("ERROR: id %d code %d flags %d %q %v", h.id, code, flags, msg, err)
	}
}

func socketPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "vg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

func TestDialErrors(t *testing.T) {
	path := socketPath(t)
	_, err := Dial(path)
	if !errors.Is(err, ErrNotRunning) || err.Error() != "vigild is not running: no socket at "+path {
		t.Errorf("no socket: %v", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Dial(path); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "refuses connections") {
		t.Errorf("stale socket: %v", err)
	}
	// EACCES cannot be provoked as root; check what it turns into.
	err = dialError(path, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)})
	if !errors.Is(err, ErrPermission) || !strings.HasPrefix(err.Error(), "permission denied on "+path+": ") || !strings.Contains(err.Error(), "add your user to group") {
		t.Errorf("permission: %v", err)
	}
}

// fakeDaemon accepts one connection and runs serve on it.
func fakeDaemon(t *testing.T, serve func(nc net.Conn)) string {
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		serve(nc)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return path
}

// readRequest reads one frame from a client.
func readRequest(nc net.Conn) (header, []byte, error) {
	hb := make([]byte, headerSize)
	if _, err := io.ReadFull(nc, hb); err != nil {
		return header{}, nil, err
	}
	h, err := parseHeader(hb)
	if err != nil {
		return h, nil, err
	}
	p := make([]byte, h.length)
	_, err = io.ReadFull(nc, p)
	return h, p, err
}

// answer is the document's INFER_RESPONSE with its id and frame_seq set.
func answer(t *testing.T, id, seq uint64) []byte {
	b := docExample(t, "**INFER_RESPONSE**")
	le.PutUint64(b[8:], id)
	le.PutUint64(b[headerSize+8:], seq)
	return b
}

func TestOutOfOrderAnswers(t *testing.T) {
	path := fakeDaemon(t, func(nc net.Conn) {
		var ids, seqs []uint64
		for range 3 {
			h, p, err := readRequest(nc)
			if err != nil {
				return
			}
			ids, seqs = append(ids, h.id), append(seqs, le.Uint64(p))
		}
		for i := 2; i >= 0; i-- { // answer in reverse order
			nc.Write(answer(t, ids[i], seqs[i]))
		}
		io.Copy(io.Discard, nc)
	})
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errs := make(chan error, 3)
	for seq := uint64(1); seq <= 3; seq++ {
		go func() {
			resp, err := c.Infer(context.Background(), &InferRequest{FrameSeq: seq, Budget: time.Second})
			if err == nil && resp.FrameSeq != seq {
				err = errors.New("answer for another request")
			}
			errs <- err
		}()
	}
	for range 3 {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(waitLimit):
			t.Fatal("no answer")
		}
	}
}

func TestCancelAndServerErrors(t *testing.T) {
	path := fakeDaemon(t, func(nc net.Conn) {
		// Request 1 times out on the client; its late answer is dropped.
		h1, _, err := readRequest(nc)
		if err != nil {
			return
		}
		h2, _, err := readRequest(nc)
		if err != nil {
			return
		}
		nc.Write(answer(t, h1.id, 1))
		nc.Write(answer(t, h2.id, 2))
		// Request 3 gets a kept ERROR, then a closing ERROR ends all.
		h3, _, _ := readRequest(nc)
		h4, _, _ := readRequest(nc)
		nc.Write(errorFrame(h3.id, CodeInvalidRequest, 0, "bad tensor"))
		nc.Write(errorFrame(0, CodeShuttingDown, 1, "vigild is shutting down"))
		_ = h4
		io.Copy(io.Discard, nc)
	})
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.Infer(ctx, &InferRequest{FrameSeq: 1, Budget: time.Second})
		first <- err
	}()
	// Let request 1 be written first, then cancel it before its answer.
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		// The answer may already have been delivered; either is correct.
		if err != nil {
			t.Fatalf("cancelled request: %v", err)
		}
	}
	if _, err := c.Infer(context.Background(), &InferRequest{FrameSeq: 1, Budget: time.Second}); err != nil {
		// When request 1 was cancelled before it was written, this is the
		// first request the daemon sees.
		t.Fatalf("second request: %v", err)
	}
	third := make(chan error, 1)
	go func() {
		_, err := c.Infer(context.Background(), &InferRequest{FrameSeq: 3, Budget: time.Second})
		third <- err
	}()
	_, err = c.Infer(context.Background(), &InferRequest{FrameSeq: 4, Budget: time.Second})
	var se *ServerError
	if !errors.As(err, &se) {
		t.Fatalf("request 3 or 4: %v", err)
	}
	err3 := <-third
	// One of them got INVALID_REQUEST, the other the closing error.
	codes := map[uint16]bool{}
	for _, e := range []error{err, err3} {
		if errors.As(e, &se) {
			codes[se.Code] = true
		}
	}
	if !codes[CodeInvalidRequest] || !codes[CodeShuttingDown] {
		t.Errorf("errors %v and %v", err, err3)
	}
	if _, err := c.Ping(context.Background()); !errors.As(err, &se) || se.Code != CodeShuttingDown {
		t.Errorf("after the closing error: %v", err)
	}
}

func errorFrame(id uint64, code uint16, flags uint8, msg string) []byte {
	b := beginFrame(nil, typeError, id)
	b = le.AppendUint16(b, code)
	b = append(b, flags, 0)
	b = le.AppendUint16(b, uint16(len(msg)))
	b = le.AppendUint16(b, 0)
	b = appendPad(append(b, msg...), len(msg))
	endFrame(b, 0)
	return b
}

func TestInferNeedsADeadline(t *testing.T) {
	path := fakeDaemon(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Infer(context.Background(), &InferRequest{}); err == nil || !strings.Contains(err.Error(), "no deadline") {
		t.Errorf("err = %v", err)
	}
	bad := &InferRequest{Budget: time.Second, Inputs: []Tensor{{Name: "x", DType: Float32, Shape: []int64{2}, Float32: []float32{1}}}}
	if _, err := c.Infer(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "needs 8 bytes, got 4") {
		t.Errorf("err = %v", err)
	}
	c.Close()
	if _, err := c.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
