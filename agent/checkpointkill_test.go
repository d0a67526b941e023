package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/ckptlink"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// countingBlobs is the cloud's blob directory, counting the puts of each
// chunk: which chunks a vehicle sent again after a restart.
type countingBlobs struct {
	*blob.Dir
	mu   sync.Mutex
	puts map[string]int
}

func (c *countingBlobs) Put(ctx context.Context, sum string, data []byte) error {
	c.mu.Lock()
	c.puts[sum]++
	c.mu.Unlock()
	return c.Dir.Put(ctx, sum, data)
}

func (c *countingBlobs) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.puts))
	for k, v := range c.puts {
		out[k] = v
	}
	return out
}

func startCountingCheckpointCloud(t *testing.T, broker *mqtttest.Broker, dir string) (*countingBlobs, *blob.Catalog) {
	t.Helper()
	d, err := blob.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := &countingBlobs{Dir: d, puts: map[string]int{}}
	return blobs, startReceiver(t, broker, dir, blobs)
}

// fillStore appends n incompressible records of size bytes to stream of
// the store cfg names, before any daemon runs on it.
func fillStore(t *testing.T, cfg Config, stream string, n, size int) {
	t.Helper()
	scfg := cfg.Storage
	scfg.Dir = cfg.storeDir()
	s, err := storage.Open(context.Background(), scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stream(stream)
	for range n {
		p := make([]byte, size)
		rand.Read(p)
		if _, ok := st.Append(p); !ok {
			t.Fatalf("append to %s refused", stream)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.WaitDurable(ctx, st.Assigned()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// ackedAtKill reads a checkpoint's upload progress file: which chunks the
// cloud had acknowledged when the daemon died.
func ackedAtKill(t *testing.T, dir, id string) []bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, id, ckptlink.ProgressName))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Chunks int    `json:"chunks"`
		Acked  []byte `json:"acked"`
	}
	if err := json.Unmarshal(b, &p); err != nil || len(p.Acked) != (p.Chunks+7)/8 {
		t.Fatalf("upload progress of %s: %q (%v)", id, b, err)
	}
	out := make([]bool, p.Chunks)
	for i := range out {
		out[i] = p.Acked[i/8]&(1<<(i%8)) != 0
	}
	return out
}

// TestCheckpointDaemonKilledMidUpload: the daemon (a process of its own)
// is killed with SIGKILL while it uploads a full checkpoint over a slow
// link, and started again on the same data directory. The upload resumes
// and completes in the cloud, verified chunk by chunk; no chunk the
// progress file had acknowledged at the kill is sent again; the store
// serves.
func TestCheckpointDaemonKilledMidUpload(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	startCloud(t, broker, filepath.Join(t.TempDir(), "sink"))
	blobs, cat := startCountingCheckpointCloud(t, broker, t.TempDir())
	cfg := daemonConfig(t)
	cfg.Checkpoint.FullEvery, cfg.Checkpoint.DifferentialEvery, cfg.Checkpoint.IncrementalEvery = 0, 0, 0 // on demand only
	cfg.Sync = SyncConfig{Enabled: true, Config: edge.Config{Broker: broker.URL(), AckTimeout: time.Second,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond}}
	fillStore(t, cfg, storage.StreamEvents, 1500, 1<<10)
	var logs strings.Builder
	stderr := &syncWriter{b: &logs}

	// First run, full speed: the telemetry drains (a checkpoint goes
	// behind it), then the daemon stops.
	ch := startChild(t, cfg, stderr)
	waitFor(t, 60*time.Second, "the telemetry drained", func() (bool, string) {
		st := ch.status()
		s := syncStream(st, storage.StreamEvents)
		return s.Cursor >= 1500, fmt.Sprintf("%+v", s)
	})
	ch.stop()

	// Second run, over a 128 KiB/s link: a full of about 1.5 MiB takes
	// some 12 s to upload. Killed once a quarter of it is acknowledged.
	slow := cfg
	slow.Sync.MaxBytesPerSecond = 128 << 10
	ch = startChild(t, slow, stderr)
	waitFor(t, 60*time.Second, "the daemon started", func() (bool, string) {
		st := ch.status()
		return st.Checkpoints.State != "starting", st.Checkpoints.State
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := ch.c.ControlReply(ctx, client.ControlRequest{Op: client.OpCheckpoint, Value: client.CheckpointFull}); err != nil {
		stderr.mu.Lock()
		defer stderr.mu.Unlock()
		t.Fatalf("checkpoint now: %v\n%s", err, logs.String())
	}
	var id string
	var chunks int
	waitFor(t, 60*time.Second, "a quarter of the upload acknowledged", func() (bool, string) {
		st := ch.status()
		for _, u := range st.Checkpoints.Uploads {
			id, chunks = u.ID, u.Chunks
			if u.Chunks > 0 && u.ChunksAcked >= u.Chunks/4 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", st.Checkpoints.Uploads)
	})
	ch.kill()
	acked := ackedAtKill(t, cfg.CheckpointDir(), id)
	putsAtKill := blobs.snapshot()
	nAcked := 0
	for _, a := range acked {
		if a {
			nAcked++
		}
	}
	if nAcked == 0 || nAcked == chunks {
		t.Fatalf("killed with %d of %d chunks acknowledged: the scenario did not happen", nAcked, chunks)
	}
	if ms, _ := cat.Manifests(cfg.VehicleID); len(ms) > 0 {
		t.Fatal("the checkpoint was complete in the cloud before the kill")
	}

	// Third run, full speed: the upload resumes and completes.
	ch = startChild(t, cfg, stderr)
	var m *manifest.Manifest
	waitFor(t, 60*time.Second, "the checkpoint complete in the cloud", func() (bool, string) {
		ms, err := cat.Manifests(cfg.VehicleID)
		for _, cm := range ms {
			if cm.ID == id {
				m = cm
			}
		}
		return m != nil, fmt.Sprintf("%d manifests (%v); uploads %+v", len(ms), err, ch.status().Checkpoints.Uploads)
	})
	if err := manifest.Verify(context.Background(), blob.Source(context.Background(), blobs), m); err != nil {
		t.Fatalf("the uploaded checkpoint does not verify in the cloud: %v", err)
	}
	puts := blobs.snapshot()
	resent := 0
	for i, c := range m.Chunks {
		if n := puts[c.SHA256] - putsAtKill[c.SHA256]; n > 0 {
			if acked[i] {
				t.Errorf("chunk %d, acknowledged before the kill, sent %d times after it", i, n)
			} else if putsAtKill[c.SHA256] > 0 {
				resent++
			}
		}
	}
	infer(t, ch.c, 200*time.Millisecond)
	ch.stop()
	t.Logf("daemon killed with %d of %d chunks acknowledged; %d chunks the cloud had received unacknowledged went again", nAcked, chunks, resent)
}
