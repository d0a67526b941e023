package socket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/agent/wire"
)

// waitLimit bounds every wait of these tests; nothing should come near it.
const waitLimit = 10 * time.Second

var frameShape = []int64{1, 3, 66, 200}

// socketPath returns a short socket path in a fresh directory (sun_path
// holds 108 bytes, and t.TempDir's paths can be longer).
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// toyHandler expects one input "frame" float32 [1,3,66,200] and answers
// "controls" float32 [1,3]. Tests hook into it with gate (called before
// answering, with the request's frame sequence number) and knobs.
type toyHandler struct {
	calls      atomic.Int64
	gate       func(ctx context.Context, seq uint64) // nil: answer at once
	outputSize int                                   // bytes of an extra uint8 output, to make answers big
	drills     bool
	mu         sync.Mutex
	parked     bool
	log        []string
}

func (h *toyHandler) Infer(ctx context.Context, deadline time.Time, req *wire.InferRequest, resp *wire.InferResponse) {
	h.calls.Add(1)
	if len(req.Tensors) != 1 {
		resp.SetNoResult(wire.ReasonInvalidInput, fmt.Sprintf("expected 1 input, got %d", len(req.Tensors)))
		return
	}
	in := &req.Tensors[0]
	if in.Name != "frame" {
		resp.SetNoResult(wire.ReasonInvalidInput, fmt.Sprintf("unknown input %q: the model takes \"frame\"", in.Name))
		return
	}
	if in.DType != wire.Float32 || !slices.Equal(in.Shape, frameShape) {
		resp.SetNoResult(wire.ReasonInvalidInput, fmt.Sprintf("input %q: expected float32%v, got %s", in.Name, frameShape, in.ShapeString()))
		return
	}
	if h.gate != nil {
		h.gate(ctx, req.FrameSeq)
	}
	var sum float32
	for _, v := range in.Float32s() {
		sum += v
	}
	resp.SetOK(wire.Primary)
	resp.ModelName, resp.ModelVersion = "toy", "1"
	resp.Backends[0] = wire.BackendReport{Started: true, Finished: true, Outcome: wire.OutcomeOK, LatencyMicros: 5}
	resp.AddOutput().SetFloat32("controls", []int64{1, 3}, []float32{sum, float32(req.FrameSeq), 0.5})
	if h.outputSize > 0 {
		o := resp.AddOutput()
		o.SetRaw("big", wire.Uint8, []int64{int64(h.outputSize)}, make([]byte, h.outputSize))
	}
}

func (h *toyHandler) Status(context.Context) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return json.Marshal(map[string]any{"vehicle_state": map[bool]string{true: "parked", false: "driving"}[h.parked], "calls": h.calls.Load()})
}

func (h *toyHandler) Control(_ context.Context, peer Peer, req *wire.ControlRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, fmt.Sprintf("%s uid=%d", req.Op, peer.UID))
	switch req.Op {
	case wire.OpSetVehicleState:
		h.parked = req.VehicleState == wire.Parked
	case wire.OpDrillFault:
		if !h.drills {
			return RefuseControl(wire.ControlDrillsDisabled, "drills are disabled in the daemon's configuration")
		}
		if !h.parked {
			return RefuseControl(wire.ControlNotParked, "drills need the vehicle parked")
		}
	case wire.OpSetLogLevel:
		return errors.New("log level is fixed in this test")
	case wire.OpCheckpoint:
		return ControlDone("took a " + req.Checkpoint.String() + " checkpoint")
	}
	return nil
}

type server struct {
	*Server
	path   string
	served chan error
}

// startServer listens on a fresh socket with cfg edited by edit, serves in
// a goroutine, and closes at the end of the test.
func startServer(t *testing.T, h Handler, edit func(*ServerConfig)) *server {
	t.Helper()
	noLeaks(t)
	cfg := DefaultServerConfig()
	cfg.Path = socketPath(t)
	if edit != nil {
		edit(&cfg)
	}
	s, err := Listen(cfg, h, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{Server: s, path: cfg.Path, served: make(chan error, 1)}
	go func() { srv.served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-srv.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Serve did not return after Close")
		}
	})
	return srv
}

// noLeaks checks, after the test's other clean-ups, that every goroutine
// it started has ended (the package has no TestMain of its own to share
// with the daemon's tests).
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// raw is a connection that speaks frames by hand, for malformed input.
type raw struct {
	t  *testing.T
	nc *net.UnixConn
}

func dialRaw(t *testing.T, path string) *raw {
	t.Helper()
	nc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc}
}

func (r *raw) send(b []byte) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(waitLimit))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *raw) sendMsg(id uint64, m wire.Message) {
	r.t.Helper()
	b, err := wire.AppendFrame(nil, id, m)
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(b)
}

// frame is one frame read back.
type frame struct {
	h       wire.Header
	payload []byte
}

func (r *raw) read() (frame, error) {
	r.nc.SetReadDeadline(time.Now().Add(waitLimit))
	var f frame
	hb := make([]byte, wire.HeaderSize)
	if _, err := io.ReadFull(r.nc, hb); err != nil {
		return f, err
	}
	if err := wire.DecodeHeader(hb, &f.h, 0); err != nil {
		return f, err
	}
	f.payload = make([]byte, f.h.Length)
	_, err := io.ReadFull(r.nc, f.payload)
	return f, err
}

func (r *raw) readFrame() frame {
	r.t.Helper()
	f, err := r.read()
	if err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	return f
}

func (r *raw) readError() (uint64, wire.ErrorFrame) {
	r.t.Helper()
	f := r.readFrame()
	if f.h.Type != wire.TypeError {
		r.t.Fatalf("got %s, want ERROR", f.h.Type)
	}
	var e wire.ErrorFrame
	if err := e.DecodePayload(f.payload); err != nil {
		r.t.Fatal(err)
	}
	return f.h.ID, e
}

func (r *raw) readInfer() (uint64, *wire.InferResponse) {
	r.t.Helper()
	f := r.readFrame()
	if f.h.Type != wire.TypeInferResponse {
		var e wire.ErrorFrame
		e.DecodePayload(f.payload)
		r.t.Fatalf("got %s (%+v), want INFER_RESPONSE", f.h.Type, e)
	}
	resp := new(wire.InferResponse)
	if err := resp.DecodePayload(f.payload); err != nil {
		r.t.Fatal(err)
	}
	return f.h.ID, resp
}

// expectClosed reads until the server's close: EOF, or ECONNRESET when the
// server closed with bytes of ours unread.
func (r *raw) expectClosed() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := r.nc.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		r.t.Fatalf("after a closing error: read gave %v, want EOF", err)
	}
}

func frameRequest(seq uint64, budget time.Duration) *wire.InferRequest {
	data := make([]byte, 4*3*66*200)
	return &wire.InferRequest{FrameSeq: seq, BudgetMicros: uint32(budget.Microseconds()),
		Tensors: []wire.Tensor{{Name: "frame", DType: wire.Float32, Shape: frameShape, Data: data}}}
}

// eventually polls cond, boundedly, for conditions no channel reports.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv waits for a value from ch, boundedly.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func ownUID() int { return os.Getuid() }
