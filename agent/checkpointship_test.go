package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/ckptlink"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// startCheckpointCloud runs the cloud's checkpoint receiver into a blob
// store and catalog under dir.
func startCheckpointCloud(t *testing.T, broker *mqtttest.Broker, dir string) *blob.Catalog {
	t.Helper()
	blobs, err := blob.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return startReceiver(t, broker, dir, blobs)
}

// startReceiver runs the cloud's checkpoint receiver into blobs and a
// catalog under dir.
func startReceiver(t *testing.T, broker *mqtttest.Broker, dir string, blobs blob.Store) *blob.Catalog {
	t.Helper()
	cat, err := blob.NewCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := ckptlink.NewReceiver(ckptlink.ReceiverConfig{Broker: broker.URL(), Blobs: blobs, Catalog: cat,
		ConnectTimeout: 2 * time.Second, ReconnectMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := rx.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rx.Close(ctx); err != nil {
			t.Errorf("receiver Close: %v", err)
		}
	})
	return cat
}

// TestDaemonShipsCheckpoints: with the link on, the daemon uploads the
// full it takes at start and an incremental taken on demand to the
// cloud's checkpoint store, and status shows each upload complete with
// every chunk acknowledged.
func TestDaemonShipsCheckpoints(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	cat := startCheckpointCloud(t, broker, t.TempDir())
	cfg := daemonConfig(t)
	cfg.Sync = SyncConfig{Enabled: true, Config: edge.Config{Broker: broker.URL(), AckTimeout: time.Second,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond}}
	_, c := startDaemon(t, cfg)
	for range 20 {
		infer(t, c, 200*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.ControlReply(ctx, client.ControlRequest{Op: client.OpCheckpoint, Value: client.CheckpointIncremental}); err != nil {
		t.Fatal(err)
	}
	want := []string{"000001-full", "000002-incremental"}
	var st status.Status
	waitFor(t, 60*time.Second, "both checkpoints complete in the cloud", func() (bool, string) {
		st = fetchStatus(t, c)
		ms, err := cat.Manifests(cfg.VehicleID)
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		done := 0
		for _, u := range st.Checkpoints.Uploads {
			if u.State == "complete" && u.ChunksAcked == u.Chunks {
				done++
			}
		}
		return err == nil && slices.Equal(ids, want) && done == 2, fmt.Sprintf("catalog %v (%v), uploads %+v", ids, err, st.Checkpoints.Uploads)
	})
	local, err := checkpoint.List(cfg.CheckpointDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range st.Checkpoints.Uploads {
		if u.ID != want[i] || u.Chunks != len(local[i].Chunks) {
			t.Errorf("upload %d: %+v, want %s with %d chunks", i, u, want[i], len(local[i].Chunks))
		}
	}
}
