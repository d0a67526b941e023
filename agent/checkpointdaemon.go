package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/cmdlink"
)

// startCheckpoints starts the checkpoints' scheduler when checkpoints are
// on and the store opened. Like the link, checkpoints that cannot work
// (a directory that cannot be written) leave the daemon serving: status
// says why.
func (d *Daemon) startCheckpoints(ctx context.Context) error {
	switch {
	case !d.cfg.StorageEnabled:
		d.ckptWhy = "storage.enabled: false"
		return nil
	case !d.cfg.Checkpoint.Enabled:
		d.ckptWhy = "checkpoint.enabled: false"
		d.log.Info("checkpoints off by configuration")
		return nil
	case d.tel == nil:
		d.ckptWhy = "the telemetry buffer is unavailable"
		d.warnings = append(d.warnings, "checkpoints off: the telemetry buffer is unavailable")
		return nil
	}
	cc := checkpointerConfig{
		Store: d.tel.store, Dir: d.cfg.CheckpointDir(), Sched: d.cfg.Checkpoint, Budget: d.cfg.CheckpointBudget(),
		Vehicle: d.cfg.VehicleID, Version: Version, Clock: clock.Real(), Log: d.log.Named("checkpoints"),
		Event: d.tel.event,
	}
	if ship := d.shipper(); ship != nil {
		// Retention never deletes what the link is uploading, and
		// deletes what the cloud has first; a new checkpoint wakes the
		// link.
		cc.Busy, cc.Shipped, cc.Kick = ship.Pinned, ship.Uploaded, ship.Kick
	}
	c := newCheckpointer(cc)
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	d.ckpt = c
	s := d.cfg.Checkpoint
	d.log.Info("checkpoints on", zap.String("dir", cc.Dir), zap.Int64("budget_bytes", cc.Budget), zap.Duration("full_every", s.FullEvery),
		zap.Duration("differential_every", s.DifferentialEvery), zap.Duration("incremental_every", s.IncrementalEvery), zap.Int("keep_full", s.KeepFull))
	return nil
}

// closeCheckpoints stops the scheduler; a checkpoint being written is
// abandoned and leaves nothing behind.
func (d *Daemon) closeCheckpoints(ctx context.Context) error {
	if d.ckpt == nil {
		return nil
	}
	return d.ckpt.close(ctx)
}

// errCheckpointsOff is why an on-demand checkpoint is refused.
func (d *Daemon) errCheckpointsOff() error {
	return fmt.Errorf("checkpoints are off in this daemon: %s", d.ckptWhy)
}

// checkpointStatus reports the checkpoints.
func (d *Daemon) checkpointStatus() status.CheckpointsStatus {
	if d.ckpt == nil {
		return status.CheckpointsStatus{State: "off", Why: d.ckptWhy, Enabled: false}
	}
	s := d.ckpt.status()
	if ship := d.shipper(); ship != nil {
		s.Uploads = uploadStatus(ship.Stats())
	}
	return s
}

// controlCheckpoint answers CONTROL CHECKPOINT: the checkpoint's summary
// as one line of JSON, or why there is none.
func (d *Daemon) controlCheckpoint(ctx context.Context, k wire.CheckpointKind) error {
	if d.ckpt == nil && d.ckptWhy == "" && !d.running.Load() {
		// The socket serves before the checkpoints' step has run.
		return socket.RefuseControl(wire.ControlFailed, "vigild is still starting; checkpoints are not up yet, try again")
	}
	if d.ckpt == nil {
		return socket.RefuseControl(wire.ControlFailed, "%v", d.errCheckpointsOff())
	}
	sum, err := d.ckpt.now(ctx, manifest.Kind(k.String()))
	if err != nil {
		return socket.RefuseControl(wire.ControlFailed, "%v", err)
	}
	b, err := summaryText(sum)
	if err != nil {
		return err
	}
	return socket.ControlDone(string(b))
}

// summaryText encodes a summary to fit a CONTROL_RESPONSE's message,
// cutting the forced-full reason if it must.
func summaryText(s status.CheckpointSummary) ([]byte, error) {
	b, err := json.Marshal(s)
	if err == nil && len(b) > wire.MaxTextLen {
		cut := s.ForcedFull[:max(len(s.ForcedFull)-(len(b)-wire.MaxTextLen)-3, 0)]
		for !utf8.ValidString(cut) {
			cut = cut[:len(cut)-1]
		}
		s.ForcedFull = cut + "..."
		b, err = json.Marshal(s)
	}
	if err == nil && len(b) > wire.MaxTextLen {
		err = errors.New("checkpoint summary does not fit a control response")
	}
	return b, err
}

// executeCheckpoint runs the fleet command checkpoint (argument kind).
func (d *Daemon) executeCheckpoint(ctx context.Context, args map[string]string, log *zap.Logger) (json.RawMessage, error) {
	a, err := commandArgs(args, "kind")
	if err != nil {
		return nil, err
	}
	k := manifest.Kind(a[0])
	if !k.Valid() {
		return nil, cmdlink.BadArgs("kind %q: want full, incremental or differential", a[0])
	}
	if d.ckpt == nil {
		return nil, d.errCheckpointsOff()
	}
	sum, err := d.ckpt.now(ctx, k)
	if err != nil {
		return nil, err
	}
	log.Info("checkpoint taken by fleet command", zap.String("id", sum.ID), zap.String("kind", sum.Kind))
	return json.Marshal(sum)
}
