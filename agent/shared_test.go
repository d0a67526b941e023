package agent

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
)

// TestDaemonSharedFrames: the real daemon answers frames in a registered
// pool as it answers the same frames inline; a NaN written into the pool is
// refused like an inline one; a reference past the pool's end is a
// BAD_BUFFER error and the connection goes on.
func TestDaemonSharedFrames(t *testing.T) {
	cfg := daemonConfig(t)
	_, c := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 3 * 66 * 200
	pool, err := c.RegisterPool(ctx, 2*4*n)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	shared := func(seq uint64, offset int) *client.InferResponse {
		t.Helper()
		resp, err := c.Infer(ctx, &client.InferRequest{FrameSeq: seq, Budget: time.Second, Inputs: []client.Tensor{
			{Name: "frame", DType: client.Float32, Shape: frameShape, Pool: pool, Offset: offset}}})
		if err != nil {
			t.Fatalf("shared frame %d: %v", seq, err)
		}
		return resp
	}
	for i := range 10 {
		frame := randomFrame()
		px := frame[0].Float32
		if err := pool.PutFloat32(4*n*(i%2), px); err != nil {
			t.Fatal(err)
		}
		sresp := shared(uint64(i), 4*n*(i%2))
		iresp, err := c.Infer(ctx, &client.InferRequest{FrameSeq: uint64(i), Budget: time.Second, Inputs: frame})
		if err != nil {
			t.Fatal(err)
		}
		if !sresp.OK() || !iresp.OK() || sresp.FrameSeq != uint64(i) {
			t.Fatalf("frame %d: shared %s/%s %q, inline %s/%s", i, sresp.Status, sresp.Reason, sresp.Detail, iresp.Status, iresp.Reason)
		}
		if sresp.ServedBy == iresp.ServedBy && !slices.Equal(sresp.Output("controls").Float32, iresp.Output("controls").Float32) {
			t.Errorf("frame %d: shared answer %v, inline %v (both from %s)", i, sresp.Output("controls").Float32,
				iresp.Output("controls").Float32, sresp.ServedBy)
		}
	}
	// Answers into shared memory: a writable pool takes the frame and the
	// answer.
	wpool, err := c.RegisterWritablePool(ctx, 4*n+4096)
	if err != nil {
		t.Fatal(err)
	}
	defer wpool.Close()
	frame := randomFrame()
	wpool.PutFloat32(0, frame[0].Float32)
	wresp, err := c.Infer(ctx, &client.InferRequest{FrameSeq: 50, Budget: time.Second, Inputs: []client.Tensor{
		{Name: "frame", DType: client.Float32, Shape: frameShape, Pool: wpool}}, Out: wpool, OutOffset: 4 * n, OutLength: 4096})
	if err != nil {
		t.Fatal(err)
	}
	iresp, err := c.Infer(ctx, &client.InferRequest{FrameSeq: 51, Budget: time.Second, Inputs: frame})
	if err != nil {
		t.Fatal(err)
	}
	if out := wresp.Output("controls"); !wresp.OK() || out == nil || &out.Data[0] != &wpool.Bytes()[4*n] {
		t.Errorf("answer into the pool: %s/%s %q, outputs %+v", wresp.Status, wresp.Reason, wresp.Detail, wresp.Outputs)
	} else if wresp.ServedBy == iresp.ServedBy && !slices.Equal(out.Float32, iresp.Output("controls").Float32) {
		t.Errorf("answer in the pool %v, inline %v", out.Float32, iresp.Output("controls").Float32)
	}

	var pool2 *client.Pool
	bad := make([]float32, n)
	bad[17] = float32(math.NaN())
	pool.PutFloat32(0, bad)
	if resp := shared(100, 0); resp.OK() || resp.Reason != client.ReasonInvalidInput || !strings.Contains(resp.Detail, "frame") {
		t.Errorf("NaN in the pool: %s/%s %q, want NO_RESULT/INVALID_INPUT naming the input", resp.Status, resp.Reason, resp.Detail)
	}
	// Buffers belong to their connection: buffer 3 of another one is
	// unknown here (this one has 1 and 2).
	c2, err := client.Dial(cfg.Socket.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for range 3 {
		other, err := c2.RegisterPool(ctx, 4*n)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		pool2 = other
	}
	_, err = c.Infer(ctx, &client.InferRequest{Budget: time.Second, Inputs: []client.Tensor{
		{Name: "frame", DType: client.Float32, Shape: frameShape, Pool: pool2}}})
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != client.CodeBadBuffer || se.Closed || !strings.Contains(se.Message, "buffer 3 is not registered") {
		t.Errorf("another connection's buffer: %v, want BAD_BUFFER", err)
	}
	if err := pool.PutFloat32(0, randomFrame()[0].Float32); err != nil {
		t.Fatal(err)
	}
	if resp := shared(101, 0); !resp.OK() {
		t.Errorf("after the errors: %s/%s %q", resp.Status, resp.Reason, resp.Detail)
	}
}

// TestDaemonSharedPython: the Python client written from docs/protocol.md
// uses the shared-memory path of the real daemon.
func TestDaemonSharedPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_DEPS") == "1" {
			t.Fatal("python3 is not installed (Debian: apt-get install -y python3)")
		}
		t.Skip("python3 is not installed; set VIGIL_REQUIRE_DEPS=1 to fail instead")
	}
	cfg := daemonConfig(t)
	startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "socket/testdata/pyclient.py", cfg.Socket.Path, "--shm").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("pyclient --shm: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got map[string]struct {
		Status  int            `json:"status"`
		Error   int            `json:"error"`
		Size    uint64         `json:"size"`
		Outputs map[string]any `json:"outputs"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got["ready"].Size != 2*4*3*66*200 {
		t.Errorf("ready: %s", out)
	}
	for _, step := range []string{"shared0", "shared1", "inline1"} {
		if got[step].Status != 1 || got[step].Outputs["controls"] == nil {
			t.Errorf("%s: %s", step, out)
		}
	}
	for _, step := range []string{"unsealed", "past_end", "unknown"} {
		if got[step].Error != client.CodeBadBuffer {
			t.Errorf("%s: %s", step, out)
		}
	}
}
