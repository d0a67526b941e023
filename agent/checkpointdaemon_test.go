package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

// TestDaemonCheckpointOnDemand: a daemon with checkpoints on takes a full
// at start; `vigilctl checkpoint now`'s request over the socket takes an
// incremental on it and answers with its summary, and the fleet command
// checkpoint a differential; bad arguments are refused as such; status
// (valid against the schema) and the metrics show the newest of each
// kind; the checkpoints are real (their chain restores).
func TestDaemonCheckpointOnDemand(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Metrics.Listen = "127.0.0.1:0"
	d, c := startDaemon(t, cfg)
	for range 3 {
		infer(t, c, 200*time.Millisecond)
	}

	// The socket: the request waits for the full taken at start.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msg, err := c.ControlReply(ctx, client.ControlRequest{Op: client.OpCheckpoint, Value: client.CheckpointIncremental})
	if err != nil {
		t.Fatalf("CONTROL CHECKPOINT: %v", err)
	}
	var inc status.CheckpointSummary
	if err := json.Unmarshal([]byte(msg), &inc); err != nil {
		t.Fatalf("summary %q: %v", msg, err)
	}
	if inc.ID != "000002-incremental" || inc.Kind != "incremental" || inc.Base != "000001-full" || inc.ForcedFull != "" || inc.Records == nil || inc.Seconds <= 0 {
		t.Errorf("incremental's summary: %s", msg)
	}

	// The fleet command.
	raw, err := d.execute(ctx, command.Envelope{Command: command.Checkpoint, Args: map[string]string{"kind": "differential"}, CorrelationID: "c-1"})
	if err != nil {
		t.Fatalf("fleet command checkpoint: %v", err)
	}
	var diff status.CheckpointSummary
	if err := json.Unmarshal(raw, &diff); err != nil || diff.ID != "000003-differential" || diff.Base != "000001-full" {
		t.Errorf("differential's summary: %s (%v)", raw, err)
	}
	for _, args := range []map[string]string{{"kind": "weekly"}, {}, {"kind": "full", "when": "now"}} {
		if _, err := d.execute(ctx, command.Envelope{Command: command.Checkpoint, Args: args}); !errors.Is(err, cmdlink.ErrBadArgs) {
			t.Errorf("fleet command checkpoint %v: %v, want bad arguments", args, err)
		}
	}

	st := fetchStatus(t, c)
	cs := st.Checkpoints
	if cs.State != "on" || !cs.Enabled || cs.Taken != 3 || cs.Kept != 3 || cs.Dir != cfg.CheckpointDir() || cs.BudgetBytes != cfg.Storage.QuotaBytes/4 ||
		cs.Last["full"].ID != "000001-full" || cs.Last["incremental"].ID != inc.ID || cs.Last["differential"].ID != diff.ID || cs.UsedBytes <= 0 {
		t.Errorf("checkpoints status %+v", cs)
	}
	if st.Storage.QuotaBytes != cfg.Storage.QuotaBytes-cs.BudgetBytes {
		t.Errorf("store quota %d, want %d less the checkpoints' budget %d", st.Storage.QuotaBytes, cfg.Storage.QuotaBytes, cs.BudgetBytes)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	doc, err := c.Status(sctx)
	if err != nil {
		t.Fatal(err)
	}
	validateStatus(t, statusSchema(t), doc)
	if _, err := checkpoint.Chain(cfg.CheckpointDir(), inc.ID, cfg.VehicleID); err != nil {
		t.Errorf("chain of %s: %v", inc.ID, err)
	}

	r, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{`vigil_checkpoint_last_timestamp_seconds{kind="full"} `, `vigil_checkpoint_age_seconds{kind="differential"} `,
		"vigil_checkpoint_bytes ", "vigil_checkpoint_failures_total 0\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestDaemonCheckpointsOff: with checkpoints off, status says why, and
// both ways of asking for one are refused with that reason.
func TestDaemonCheckpointsOff(t *testing.T) {
	d := &Daemon{log: zap.NewNop(), ckptWhy: "checkpoint.enabled: false"}
	if s := d.checkpointStatus(); s.State != "off" || s.Enabled || s.Why != "checkpoint.enabled: false" {
		t.Errorf("status %+v", s)
	}
	var ce *socket.ControlError
	if err := d.controlCheckpoint(context.Background(), wire.CheckpointFull); !errors.As(err, &ce) || ce.Code != wire.ControlFailed ||
		ce.Message != "checkpoints are off in this daemon: checkpoint.enabled: false" {
		t.Errorf("CONTROL CHECKPOINT: %v, want FAILED naming checkpoint.enabled", err)
	}
	if _, err := d.execute(context.Background(), command.Envelope{Command: command.Checkpoint, Args: map[string]string{"kind": "full"}}); err == nil ||
		errors.Is(err, cmdlink.ErrBadArgs) || !strings.Contains(err.Error(), "checkpoint.enabled: false") {
		t.Errorf("fleet command: %v, want a failure naming checkpoint.enabled", err)
	}
}

// TestConfigCheckpointSection: the defaults, the budget taken from the
// store's quota, and errors that name the field.
func TestConfigCheckpointSection(t *testing.T) {
	cfg, err := parse(t, "data_dir: /srv/v")
	if err != nil {
		t.Fatal(err)
	}
	cc := cfg.Checkpoint
	if !cc.Enabled || cc.FullEvery != 168*time.Hour || cc.DifferentialEvery != 24*time.Hour || cc.IncrementalEvery != time.Hour || cc.KeepFull != 2 ||
		cfg.CheckpointDir() != "/srv/v/checkpoints" || cfg.CheckpointBudget() != 128<<20 || cfg.StorageConfig().QuotaBytes != 384<<20 {
		t.Errorf("defaults: %+v, dir %s, budget %d, store quota %d", cc, cfg.CheckpointDir(), cfg.CheckpointBudget(), cfg.StorageConfig().QuotaBytes)
	}
	// Beside a store placed elsewhere; off, the store has its whole quota.
	cfg, err = parse(t, "storage: {dir: /mnt/ssd/vigil/tel}\ncheckpoint: {enabled: false}")
	if err != nil || cfg.CheckpointDir() != "/mnt/ssd/vigil/checkpoints" || cfg.CheckpointBudget() != 0 || cfg.StorageConfig().QuotaBytes != 512<<20 {
		t.Errorf("off: %v, dir %s, budget %d, store quota %d", err, cfg.CheckpointDir(), cfg.CheckpointBudget(), cfg.StorageConfig().QuotaBytes)
	}
	// Without storage nothing is checked: there is nothing to checkpoint.
	if _, err := parse(t, "storage: {enabled: false}\ncheckpoint: {keep_full: 0}"); err != nil {
		t.Errorf("storage off: %v", err)
	}
	for y, want := range map[string]string{
		"checkpoint: {keep_full: 0}":                          "checkpoint.keep_full",
		"checkpoint: {incremental_every: 10ms}":               "checkpoint.incremental_every",
		"checkpoint: {full_every: soon}":                      "checkpoint.full_every",
		"checkpoint: {full_evry: 1h}":                         `unknown field "full_evry"`,
		"checkpoint: {budget_mb: -1}":                         "checkpoint.budget_mb",
		"checkpoint: {budget_mb: 512}":                        "checkpoint.budget_mb 512: the budget (536870912 bytes) counts against storage.quota_bytes",
		"checkpoint: {budget_mb: 500}":                        "checkpoint.budget_mb 500: leaves the store",
		"checkpoint: {dir: /var/lib/vigil/telemetry}":         "checkpoint.dir \"/var/lib/vigil/telemetry\": is the store's directory",
		"checkpoint: {dir: /var/lib/vigil/telemetry/ckpt}":    "is inside the store's directory",
		"checkpoint: {dir: /var/lib/vigil}":                   "holds the store's directory",
		"storage: {quota_bytes: 1000}\ncheckpoint: {dir: /x}": "storage.quota_bytes",
	} {
		if _, err := parse(t, y); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", y, err, want)
		}
	}
}
