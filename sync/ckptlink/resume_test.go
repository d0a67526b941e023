package ckptlink

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
)

// bigFull takes a full checkpoint of about 3 MB of incompressible
// records: some 30 chunks.
func (r *rig) bigFull() *manifest.Manifest {
	r.appendRandom(3000, 1000)
	m := r.take(manifest.Full)
	if len(m.Chunks) < 20 {
		r.t.Fatalf("%d chunks; the test wants 20 or more", len(m.Chunks))
	}
	return m
}

// ackedNow is the set of m's chunks the persisted progress says the
// cloud acknowledged.
func (r *rig) ackedNow(m *manifest.Manifest) map[int]bool {
	p, err := loadProgress(filepath.Join(r.dir, m.ID), m)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[int]bool{}
	for i := range p.Chunks {
		if p.acked(i) {
			out[i] = true
		}
	}
	return out
}

func (r *rig) waitAcked(m *manifest.Manifest, n int) {
	waitUntil(r.t, 30*time.Second, "chunks acknowledged", func() bool { return len(r.ackedNow(m)) >= n })
}

// checkResentOnlyMissing: no chunk acknowledged at the interruption (acked)
// was sent again; the checkpoint is complete and verifies in the cloud.
func (r *rig) checkResentOnlyMissing(m *manifest.Manifest, acked map[int]bool) {
	r.t.Helper()
	waitUntil(r.t, 60*time.Second, "the checkpoint complete", func() bool { return r.ship.Uploaded(m.ID) })
	if err := manifest.Verify(context.Background(), blob.Source(context.Background(), r.blobs), m); err != nil {
		r.t.Fatal(err)
	}
	r.sentMu.Lock()
	defer r.sentMu.Unlock()
	if len(r.sends) != len(m.Chunks) {
		r.t.Errorf("%d of %d chunks sent", len(r.sends), len(m.Chunks))
	}
	again := 0
	for i, n := range r.sends {
		if n > 1 {
			again++
			if acked[i] {
				r.t.Errorf("chunk %d was acknowledged before the interruption and sent %d times", i, n)
			}
		}
	}
	r.t.Logf("%d of %d chunks acknowledged at the interruption; %d sent again", len(acked), len(m.Chunks), again)
}

// TestReceiverRestartResumes: the receiver is closed mid-upload and a
// new one started; only chunks not acknowledged go again.
func TestReceiverRestartResumes(t *testing.T) {
	r := newRig(t)
	m := r.bigFull()
	rc := r.startReceiver()
	r.startVehicle(nil, 1<<20)
	r.waitAcked(m, 8)
	closeWithin(t, "receiver", rc.Close)
	acked := r.ackedNow(m)
	if len(acked) == len(m.Chunks) {
		t.Fatal("the upload finished before the receiver stopped")
	}
	time.Sleep(300 * time.Millisecond) // chunks go into the void meanwhile
	r.startReceiver()
	r.checkResentOnlyMissing(m, acked)
}

// TestBrokerRestartResumes: the broker is killed mid-upload (no
// persistence: sessions and subscriptions gone) and restarted.
func TestBrokerRestartResumes(t *testing.T) {
	r := newRig(t)
	m := r.bigFull()
	r.startReceiver()
	r.startVehicle(nil, 1<<20)
	r.waitAcked(m, 8)
	r.broker.Stop()
	acked := r.ackedNow(m)
	r.broker.Restart()
	r.checkResentOnlyMissing(m, acked)
}

// TestShipperRestartResumes: the shipper is closed mid-upload and a new
// one goes on from the persisted progress.
func TestShipperRestartResumes(t *testing.T) {
	r := newRig(t)
	m := r.bigFull()
	r.startReceiver()
	r.startVehicle(nil, 1<<20)
	r.waitAcked(m, 8)
	closeWithin(t, "shipper", r.ship.Close)
	acked := r.ackedNow(m)
	if len(acked) == len(m.Chunks) {
		t.Fatal("the upload finished before the shipper stopped")
	}
	r.sentMu.Lock()
	r.sends = map[int]int{} // count the new shipper's
	r.sentMu.Unlock()
	r.startShipper(nil)
	waitUntil(t, 60*time.Second, "the checkpoint complete", func() bool { return r.ship.Uploaded(m.ID) })
	r.sentMu.Lock()
	defer r.sentMu.Unlock()
	for i := range r.sends {
		if acked[i] {
			t.Errorf("chunk %d, acknowledged before the restart, sent again", i)
		}
	}
	if len(r.sends)+len(acked) < len(m.Chunks) {
		t.Errorf("%d chunks sent after the restart, %d acknowledged before, of %d", len(r.sends), len(acked), len(m.Chunks))
	}
}
