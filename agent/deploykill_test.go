package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/models/demo"
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
