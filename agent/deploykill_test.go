package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// TestModelDeployKilledMidDownload: vigild, in a child process, is killed
// with SIGKILL once more than half of a bundle has come down (the link's
// rate cap keeps the download slow); the next vigild resumes the download
// from the staging directory's bitmap instead of starting over (the fleet
// side serves far less than the bundle twice over in all) and the
// deployment commits.
func TestModelDeployKilledMidDownload(t *testing.T) {
	r := newDeployRig(t, func(c *Config) {
		c.Sync.MaxBytesPerSecond = 150 << 10
		if err := c.Deployments.Lifecycle.Set("timeout_downloading", "60s"); err != nil {
			t.Fatal(err)
		}
	})
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	size := bundleSize(t, r.storeDir, demo.PrimaryV2+"-2.tar")
	ch := startChild(t, r.cfg, io.Discard)
	r.waitOnline(ch.c)
	if resp, _ := r.deploy(t, hash, 2, false); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	var at status.DeploymentStatus
	waitFor(t, 30*time.Second, "half the bundle downloaded", func() (bool, string) {
		at, _ = roleStatus(ch.status(), "primary")
		return at.State == "downloading" && at.DownloadBytes*2 > at.BundleBytes && at.BundleBytes > 0, fmt.Sprintf("%+v", at)
	})
	if at.DownloadBytes >= at.BundleBytes {
		t.Fatalf("the download finished before the kill: %+v", at)
	}
	ch.kill()
	servedBefore := r.srv.Stats().Bytes

	ch2 := startChild(t, r.cfg, io.Discard)
	waitFor(t, 10*time.Second, "the deployment resumed", func() (bool, string) {
		s, ok := roleStatus(ch2.status(), "primary")
		return ok && s.Hash == hash && (s.Running || s.State == "committed"), fmt.Sprintf("%+v", s)
	})
	r.waitOnline(ch2.c)
	ld := startLoad(t, ch2.c, r.cfg.Watchdog.Deadline)
	var s status.DeploymentStatus
	waitFor(t, 40*time.Second, "the deployment's outcome", func() (bool, string) {
		s, _ = roleStatus(ch2.status(), "primary")
		return !s.Running, fmt.Sprintf("%+v", s)
	})
	ld.end()
	if s.State != "committed" {
		t.Fatalf("deployment after the kill: %+v", s)
	}
	r.waitReport(t, hash, deploywire.Committed)
	served := r.srv.Stats().Bytes
	t.Logf("bundle %d bytes; killed at %d of %d; the fleet side served %d before the kill, %d in all",
		size, at.DownloadBytes, at.BundleBytes, servedBefore, served)
	if served >= uint64(size)*3/2 {
		t.Fatalf("the fleet side served %d bytes for a %d-byte bundle: the download started over", served, size)
	}
	ch2.stop()
}

func bundleSize(t *testing.T, dir, name string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestSlotTableCarriedByCheckpoint: the slot table is kept in the store
// after every change, so a checkpoint carries it: a replacement unit
// restored from a checkpoint taken after a committed version (floor 2)
// and a quarantined one (v3, its trial failed) starts on its own empty
// slots (the factory model serves) with the dead unit's floor and
// quarantine adopted, so it refuses both versions; a restart of the
// original unit adopts nothing new.
func TestSlotTableCarriedByCheckpoint(t *testing.T) {
	r := newDeployRig(t, func(c *Config) { c.Checkpoint.Enabled = true })
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	factory := servedModel(d)
	good := deployGood(t, r, d, c)
	bad := r.pack(t, demo.PrimaryBad, 3, r.modelPriv)
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, bad, 3, false); !resp.OK {
		t.Fatalf("model-deploy v3: %+v", resp)
	}
	s := waitDeployment(t, c, bad)
	ld.end()
	if s.State != "trial_failed" {
		t.Fatalf("v3: %+v", s)
	}
	raw, err := d.tel.store.GetState(slotTableKey)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := slot.DecodeTable(raw)
	if err != nil || kept.Floors["pilotnet"] != 2 || len(kept.Quarantine) != 1 || kept.Quarantine[0].Hash != bad ||
		kept.Roles[slot.Primary] == nil || kept.Roles[slot.Primary].Active.Model.Hash != good {
		t.Fatalf("the slot table kept in the store: %v %s", err, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.ControlReply(ctx, client.ControlRequest{Op: client.OpCheckpoint, Value: client.CheckpointFull}); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()

	cfg2 := r.cfg
	cfg2.DataDir = t.TempDir()
	cfg2.Socket.Path = r.cfg.Socket.Path + "2"
	cfg2.Checkpoint.Dir = ""
	if _, err := checkpoint.RestoreChain(ctx, r.cfg.CheckpointDir(), "", cfg2.StorageConfig().Dir,
		checkpoint.RestoreOptions{Vehicle: r.cfg.VehicleID, Reincarnate: true, RestoredAt: time.Now()}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	d2, _ := startDaemon(t, cfg2)
	tb := d2.models.store.Table()
	if tb.Floors["pilotnet"] != 2 || len(tb.Quarantine) != 1 || tb.Quarantine[0].Hash != bad {
		t.Fatalf("the replacement's slot table: floors %v, quarantine %+v", tb.Floors, tb.Quarantine)
	}
	if rs := tb.Roles[slot.Primary]; rs != nil && rs.Active != nil {
		t.Fatalf("the replacement has an active primary slot without its files: %+v", rs.Active)
	}
	if p := servedModel(d2); filepath.Base(p) != filepath.Base(factory) {
		t.Fatalf("the replacement serves %s, not the factory model", p)
	}
	for _, v := range []uint64{2, 3} {
		ver := slot.Version{Name: "pilotnet", Version: v, Hash: strings.Repeat("a", 64),
			Files: []slot.File{{Path: "model.onnx", SHA256: strings.Repeat("b", 64), Size: 1}}}
		if v == 3 {
			ver.Hash = bad
		}
		if err := d2.models.store.Install(slot.Primary, ver, os.DirFS(t.TempDir()), slot.InstallOptions{}); !errors.Is(err, slot.ErrBelowFloor) && !errors.Is(err, slot.ErrQuarantined) {
			t.Fatalf("the replacement installs pilotnet v%d: %v", v, err)
		}
	}
}
