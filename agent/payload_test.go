package agent

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/wire"
)

// TestRequestPayloadMatchesWire: the size the daemon works out for a full
// request is the size the codec writes for one.
func TestRequestPayloadMatchesWire(t *testing.T) {
	cfg := daemonConfig(t)
	d, _ := startDaemon(t, cfg)
	inputs := d.router.Inputs()
	req := &wire.InferRequest{BudgetMicros: 1000}
	for _, in := range inputs {
		w := wire.Tensor{Name: in.Name, DType: wire.DType(in.DType), Shape: in.Shape,
			Data: make([]byte, in.Size*in.DType.Size())}
		req.Tensors = append(req.Tensors, w)
	}
	p, err := req.AppendPayload(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := requestPayload(inputs); got != len(p) {
		t.Fatalf("requestPayload %d, the codec wrote %d", got, len(p))
	}
}

// TestDaemonRefusesPayloadBelowAFrame: a socket.max_payload below the
// models' request (here, one 158 400-byte frame) fails the start with an
// error naming the field, instead of a daemon that refuses every frame.
func TestDaemonRefusesPayloadBelowAFrame(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Socket.MaxPayload = 64 << 10
	log, level, err := NewLogger(cfg.Log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Start(context.Background(), cfg, log, level)
	if err == nil {
		d.Close(context.Background())
	}
	if err == nil || !strings.Contains(err.Error(), "socket.max_payload 65536") || !strings.Contains(err.Error(), "158") {
		t.Fatalf("Start with socket.max_payload 64 KiB: %v", err)
	}
	if sc := socket.DefaultServerConfig(); requestFits(nil, sc.MaxPayload) != nil {
		t.Error("an empty request does not fit the default limit")
	}
}
