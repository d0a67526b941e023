package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/wire"
)

// frameHandler answers every frame OK and counts the frames whose
// pixels are all in [0, 1) and not all zero (the simulator's random
// frames, wherever they came from).
type frameHandler struct {
	frames, good atomic.Int64
	mapped       atomic.Bool // the server had a memfd pool mapped
}

func (h *frameHandler) Infer(_ context.Context, _ time.Time, req *wire.InferRequest, resp *wire.InferResponse) {
	if h.frames.Add(1) == 1 {
		maps, _ := os.ReadFile("/proc/self/maps")
		h.mapped.Store(strings.Contains(string(maps), "/memfd:vigil-frames"))
	}
	if t := req.Tensor("frame"); t != nil {
		var sum float32
		ok := true
		for _, v := range t.Float32s() {
			sum += v
			ok = ok && v >= 0 && v < 1
		}
		if ok && sum > 0 {
			h.good.Add(1)
		}
	}
	resp.SetOK(wire.Primary)
	resp.ModelName, resp.ModelVersion = "sim-test", "1"
	resp.AddOutput().SetFloat32("controls", []int64{1, 3}, []float32{0, 0, 0})
}

func (h *frameHandler) Status(context.Context) ([]byte, error) { return []byte(`{}`), nil }

func (h *frameHandler) Control(context.Context, socket.Peer, *wire.ControlRequest) error { return nil }

// TestSharedMemoryFrames: with --shm the simulator registers its frames in
// shared memory and every request names one; the server reads the real
// pixels from the pool.
func TestSharedMemoryFrames(t *testing.T) {
	cfg := socket.DefaultServerConfig()
	cfg.Path = filepath.Join(t.TempDir(), "v.sock")
	h := &frameHandler{}
	srv, err := socket.Listen(cfg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	defer func() {
		srv.Close(context.Background())
		<-served
	}()
	var out, errb bytes.Buffer
	args := []string{"--socket", cfg.Path, "--shm", "--duration", "1s", "--rate", "20", "--fault", "none", "--quiet", "--deadline", "500ms"}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	if n, good := h.frames.Load(), h.good.Load(); n < 5 || good != n {
		t.Errorf("%d frames, %d with the simulator's pixels:\n%s", n, good, out.String())
	}
	if !h.mapped.Load() {
		t.Error("the server had no memfd pool mapped: the frames did not come in shared memory")
	}
	if !strings.Contains(out.String(), "0 missed deadlines") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestHelpNamesShm(t *testing.T) {
	var out, errb bytes.Buffer
	run(context.Background(), []string{"--help"}, &out, &errb)
	if !strings.Contains(errb.String(), "-shm") || !strings.Contains(errb.String(), "shared memory") {
		t.Errorf("--help does not describe --shm:\n%s", errb.String())
	}
}
