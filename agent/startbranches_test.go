package agent

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/storage"
)

// TestStartLinesReachTheLogsStream: the store opens beside the models, yet
// the lines logged before it was open — the first, "starting", and each
// rung's "model loaded" — are in the logs stream after a clean stop, in
// the order they were logged.
func TestStartLinesReachTheLogsStream(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Log.Level = "info"
	cfg.Checkpoint.Enabled = false // nothing else writes while the test reads
	log, level, _ := NewLogger(cfg.Log, io.Discard)
	d, err := Start(context.Background(), cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(ctx, cfg.StorageConfig(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	recs, err := st.Read(storage.StreamLogs, 0, 1000, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range recs {
		var l struct{ Msg, Backend string }
		if r.Kind == storage.KindData && json.Unmarshal(r.Payload, &l) == nil {
			lines = append(lines, strings.TrimSpace(l.Msg+" "+l.Backend))
		}
	}
	want := []string{"starting", "model loaded primary", "model loaded shadow", "model loaded degraded", "storage open", "ready"}
	at := -1
	for _, w := range want {
		i := slices.Index(lines, w)
		if i < 0 {
			t.Fatalf("logs stream lacks %q: %q", w, lines)
		}
		if w != "storage open" && i < at { // the store's line falls among the models' wherever it opens
			t.Errorf("%q before the line it follows: %q", w, lines)
		}
		if w != "storage open" {
			at = i
		}
	}
	if lines[0] != "starting" {
		t.Errorf("first line %q, want starting", lines[0])
	}
}

// TestDaemonStartUndoesBothBranches: when the models' branch fails (no
// degraded model) while the store's branch opened the store, the failed
// start closes the store, the models that loaded and every goroutine, and
// leaves no socket.
func TestDaemonStartUndoesBothBranches(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Models.Degraded.Path = "missing.onnx"
	log, level, _ := NewLogger(cfg.Log, io.Discard)
	before := goleak.IgnoreCurrent()
	if _, err := Start(context.Background(), cfg, log, level); err == nil || !strings.Contains(err.Error(), "models.degraded") {
		t.Fatalf("Start without the degraded model: %v", err)
	}
	goleak.VerifyNone(t, before)
	if _, err := os.Stat(cfg.Socket.Path); !os.IsNotExist(err) {
		t.Errorf("a daemon that failed to start left its socket: %v", err)
	}
	st, err := storage.Open(context.Background(), cfg.StorageConfig(), zap.NewNop())
	if err != nil {
		t.Fatalf("the store after a failed start (still held?): %v", err)
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonWarningsInStartOrder: with the store unavailable and both GPU
// rungs missing their provider, the branches run at once but the warnings
// keep the start's order — the store's, the primary's, the shadow's — and
// the degraded model serves.
func TestDaemonWarningsInStartOrder(t *testing.T) {
	cfg := daemonConfig(t)
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = filepath.Join(blocked, "data") // under a file: the store cannot be made
	cfg.Deployments.SlotDir = filepath.Join(t.TempDir(), "slots")
	cfg.Deployments.StagingDir = filepath.Join(t.TempDir(), "staging")
	cfg.Checkpoint.Enabled = false
	cfg.Models.Primary.Provider = "cuda:0" // the fetched library is a CPU build
	cfg.Models.Shadow.Provider = "cuda:0"
	_, c := startDaemon(t, cfg)
	st := fetchStatus(t, c)
	if len(st.Warnings) != 3 || !strings.HasPrefix(st.Warnings[0], "telemetry buffer unavailable") ||
		!strings.HasPrefix(st.Warnings[1], "primary not loaded") || !strings.HasPrefix(st.Warnings[2], "shadow not loaded") {
		t.Fatalf("warnings %q", st.Warnings)
	}
	if resp := infer(t, c, 33*time.Millisecond); !resp.OK() || resp.ServedBy != client.Degraded {
		t.Errorf("answer with only the degraded rung: %+v", resp)
	}
}
