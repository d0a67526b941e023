package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
)

// ckptHandler answers CONTROL CHECKPOINT as the daemon does: OK with the
// summary, or FAILED when checkpoints are off.
type ckptHandler struct{ off bool }

func (ckptHandler) Infer(context.Context, time.Time, *wire.InferRequest, *wire.InferResponse) {}

func (ckptHandler) Status(context.Context) ([]byte, error) { return []byte(`{}`), nil }

func (h ckptHandler) Control(_ context.Context, _ socket.Peer, req *wire.ControlRequest) error {
	if req.Op != wire.OpCheckpoint {
		return socket.RefuseControl(wire.ControlUnknownOp, "not in this test")
	}
	if h.off {
		return socket.RefuseControl(wire.ControlFailed, "checkpoints are off in this daemon: checkpoint.enabled: false")
	}
	b, _ := json.Marshal(status.CheckpointSummary{ID: "000004-full", Kind: "full", ForcedFull: "no base checkpoint (asked for " + req.Checkpoint.String() + ")",
		Records: map[string]uint64{"inference": 2048, "events": 12}, Entries: 2100, Bytes: 3 << 20, Seconds: 1.25})
	return socket.ControlDone(string(b))
}

func serveToy(t *testing.T, h socket.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := socket.DefaultServerConfig()
	cfg.Path = filepath.Join(dir, "v.sock")
	s, err := socket.Listen(cfg, h, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
		<-served
	})
	return cfg.Path
}

// TestCheckpointNow: `vigilctl checkpoint now` sends the kind asked for
// and prints the daemon's summary; a refusal is the command's error; bad
// arguments are refused before anything is sent.
func TestCheckpointNow(t *testing.T) {
	sock := serveToy(t, ckptHandler{})
	out, err := ctl(t, "--socket", sock, "checkpoint", "now", "--kind", "differential")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"checkpoint 000004-full (full): 2100 entries, 3.0 MiB, 1.25 s\n",
		"taken full: no base checkpoint (asked for differential)\n",
		"records a restore holds: events 12, inference 2048\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out, _ := ctl(t, "--socket", sock, "checkpoint", "now"); !strings.Contains(out, "asked for incremental") {
		t.Errorf("the default kind is not incremental:\n%s", out)
	}

	off := serveToy(t, ckptHandler{off: true})
	if _, err := ctl(t, "--socket", off, "checkpoint", "now"); err == nil || !strings.Contains(err.Error(), "FAILED: checkpoints are off in this daemon: checkpoint.enabled: false") {
		t.Errorf("checkpoints off: %v", err)
	}
	for want, args := range map[string][]string{
		"want `checkpoint now":     {"checkpoint"},
		"--kind \"weekly\"":        {"checkpoint", "now", "--kind", "weekly"},
		"unexpected argument":      {"checkpoint", "now", "later"},
		"--wait -1s: must be posi": {"checkpoint", "now", "--wait", "-1s"},
	} {
		if _, err := ctl(t, append([]string{"--socket", sock}, args...)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error containing %q", args, err, want)
		}
	}
}

// TestPrintCheckpoints: the checkpoints' block of `vigilctl status`.
func TestPrintCheckpoints(t *testing.T) {
	var b strings.Builder
	printCheckpoints(&b, &status.CheckpointsStatus{State: "failing", Enabled: true, Dir: "/var/lib/vigil/checkpoints", BudgetBytes: 128 << 20, UsedBytes: 40 << 20, Kept: 5,
		Last: map[string]status.CheckpointInfo{
			"full":        {ID: "000001-full", AgeS: 7200, Records: 9000, Bytes: 30 << 20},
			"incremental": {ID: "000005-incremental", AgeS: 600, Records: 9100, Bytes: 1 << 20},
		},
		LastError: "checkpoint 000006-incremental: no space left on device", LastErrorAt: "2026-12-04T19:00:00Z",
		Uploads: []status.CheckpointUpload{{ID: "000001-full", State: "complete", ChunksAcked: 300, Chunks: 300}, {ID: "000005-incremental", State: "uploading", ChunksAcked: 3, Chunks: 11}},
	})
	for _, want := range []string{
		"checkpoints: failing   /var/lib/vigil/checkpoints   5 kept, 40.0 MiB of 128.0 MiB budget\n",
		"  full         000001-full   2h0m0s ago   9000 records   30.0 MiB\n",
		"  differential none yet\n",
		"  incremental  000005-incremental   10m0s ago   9100 records   1.0 MiB\n",
		"last error (2026-12-04T19:00:00Z): checkpoint 000006-incremental: no space left on device\n",
		"  upload 000005-incremental: uploading, 3 of 11 chunks acknowledged\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("block lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printCheckpoints(&b, &status.CheckpointsStatus{State: "off", Why: "checkpoint.enabled: false"})
	if b.String() != "\ncheckpoints: off (checkpoint.enabled: false)\n" {
		t.Errorf("off: %q", b.String())
	}
}
