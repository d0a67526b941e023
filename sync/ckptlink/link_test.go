package ckptlink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// TestChainUploads: a full, two incrementals and a differential, taken
// while records come, are uploaded oldest first; the catalog then holds
// every manifest, byte for byte, every chunk verifies from the blob
// store, the chain is whole, and no chunk was sent twice.
func TestChainUploads(t *testing.T) {
	r := newRig(t)
	var ms []*manifest.Manifest
	for _, k := range []manifest.Kind{manifest.Full, manifest.Incremental, manifest.Incremental, manifest.Differential} {
		r.appendRandom(300, 1000)
		ms = append(ms, r.take(k))
	}
	r.startReceiver()
	r.startVehicle(nil)
	waitUntil(t, 60*time.Second, "every checkpoint complete", func() bool { return r.ship.Stats().Complete == len(ms) })
	got, err := r.catalog.Manifests(vehicle)
	if err != nil || len(got) != len(ms) {
		t.Fatalf("catalog: %d manifests (%v), want %d", len(got), err, len(ms))
	}
	chunks := 0
	for _, m := range ms {
		raw, err := r.catalog.Raw(vehicle, m.StoreID, m.ID)
		local, _ := os.ReadFile(filepath.Join(r.dir, m.ID, manifest.Name))
		if err != nil || string(raw) != string(local) {
			t.Fatalf("checkpoint %s: the catalog's manifest differs from the vehicle's (%v)", m.ID, err)
		}
		if err := manifest.Verify(context.Background(), blob.Source(context.Background(), r.blobs), m); err != nil {
			t.Fatalf("verify %s in the cloud: %v", m.ID, err)
		}
		if !r.ship.Uploaded(m.ID) {
			t.Errorf("Uploaded(%s) is false", m.ID)
		}
		chunks += len(m.Chunks)
	}
	if _, err := manifest.Chain(got, "", vehicle, "the catalog"); err != nil {
		t.Fatal(err)
	}
	st := r.ship.Stats()
	if st.ChunksSent != uint64(chunks) || st.ChunksResent != 0 {
		t.Errorf("sent %d chunks (%d again), want %d once each", st.ChunksSent, st.ChunksResent, chunks)
	}
	if rs := r.recv.Stats(); rs.Complete != uint64(len(ms)) || rs.Refused != 0 {
		t.Errorf("receiver: %+v", rs)
	}
}

// forger publishes envelopes on the vehicle's topic directly and collects
// the acks.
type forger struct {
	t    *testing.T
	c    mqtt.Client
	mu   sync.Mutex
	acks []Ack
}

func (r *rig) forger() *forger {
	f := &forger{t: r.t, c: r.broker.Client(r.t, "forger", nil)}
	if err := mqtttest.Subscribe(f.c, AckTopic(vehicle), func(_ mqtt.Client, m mqtt.Message) {
		if a, err := DecodeAck(m.Payload()); err == nil {
			f.mu.Lock()
			f.acks = append(f.acks, a)
			f.mu.Unlock()
		}
	}); err != nil {
		r.t.Fatal(err)
	}
	return f
}

// send publishes e (raw when given) and waits for its ack.
func (f *forger) send(e Envelope, raw []byte) Ack {
	f.t.Helper()
	if raw == nil {
		var err error
		if raw, err = Encode(e); err != nil {
			f.t.Fatal(err)
		}
	}
	f.mu.Lock()
	n := len(f.acks)
	f.mu.Unlock()
	if err := mqtttest.Publish(f.c, Topic(vehicle), raw, false); err != nil {
		f.t.Fatal(err)
	}
	waitUntil(f.t, 10*time.Second, "an ack", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.acks) > n })
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acks[n]
}

func chunkEnv(r *rig, m *manifest.Manifest, i int) Envelope {
	b, err := manifest.ReadChunk(manifest.Dir(r.dir), m, i)
	if err != nil {
		r.t.Fatal(err)
	}
	return Envelope{Type: TypeChunk, Vehicle: vehicle, Store: m.StoreID, ID: m.ID, Index: i, Count: len(m.Chunks), SHA256: m.Chunks[i].SHA256, Data: b}
}

func manifestEnv(r *rig, m *manifest.Manifest) Envelope {
	raw, err := os.ReadFile(filepath.Join(r.dir, m.ID, manifest.Name))
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return Envelope{Type: TypeManifest, Vehicle: vehicle, Store: m.StoreID, ID: m.ID, Count: 1, SHA256: hex.EncodeToString(sum[:]), Data: raw}
}

// TestFlippedBitAndMissingChunk: a chunk with a bit flipped in flight is
// refused (bad_hash) and nothing is stored; a manifest sent while a
// chunk is missing is not completed and its ack names the chunk; once
// the chunk comes, the manifest completes the checkpoint; sent again, it
// is complete again (idempotent).
func TestFlippedBitAndMissingChunk(t *testing.T) {
	r := newRig(t)
	r.appendRandom(300, 1000)
	m := r.take(manifest.Full)
	if len(m.Chunks) < 3 {
		t.Fatalf("%d chunks; the test wants 3 or more", len(m.Chunks))
	}
	r.startReceiver()
	f := r.forger()

	e := chunkEnv(r, m, 1)
	raw, _ := Encode(e)
	raw[len(raw)-10] ^= 0x04
	if a := f.send(e, raw); a.Status != Refused || a.Reason != ReasonBadHash || a.Index != 1 || a.ID != m.ID {
		t.Fatalf("flipped bit: ack %+v, want refused bad_hash for chunk 1", a)
	}
	n := 0
	r.blobs.List(context.Background(), func(string, int64, time.Time) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d blobs stored after a refused chunk", n)
	}

	for i := range m.Chunks {
		if i == 1 {
			continue
		}
		if a := f.send(chunkEnv(r, m, i), nil); a.Status != Stored || a.Index != i {
			t.Fatalf("chunk %d: ack %+v", i, a)
		}
	}
	a := f.send(manifestEnv(r, m), nil)
	if a.Status != Missing || len(a.Missing) != 1 || a.Missing[0] != (Range{1, 1}) {
		t.Fatalf("manifest with chunk 1 missing: ack %+v", a)
	}
	if ok, _ := r.catalog.Has(vehicle, m.StoreID, m.ID); ok {
		t.Fatal("complete with a chunk missing")
	}
	if a := f.send(chunkEnv(r, m, 1), nil); a.Status != Stored {
		t.Fatalf("chunk 1: %+v", a)
	}
	for range 2 {
		if a := f.send(manifestEnv(r, m), nil); a.Status != Complete {
			t.Fatalf("manifest with every chunk: %+v", a)
		}
	}
	if ok, _ := r.catalog.Has(vehicle, m.StoreID, m.ID); !ok {
		t.Fatal("not in the catalog after its complete ack")
	}
	// An envelope of another vehicle on this vehicle's topic.
	e = chunkEnv(r, m, 0)
	e.Vehicle = "veh-2"
	if a := f.send(e, nil); a.Status != Refused || a.Reason != ReasonWrongVehicle {
		t.Fatalf("another vehicle's envelope: %+v", a)
	}
}

// TestUploadUnderFleetACL: under docs/broker/acl (mqtttest.FleetACL),
// with TLS identities, a vehicle uploads its checkpoints to the
// receiver ("ingest") and reads its acks: the ACL lets both ends do what
// the upload needs.
func TestUploadUnderFleetACL(t *testing.T) {
	r := newRigOn(t, mqtttest.NewPKI(t))
	r.appendRandom(100, 1000)
	r.take(manifest.Full)
	r.appendRandom(100, 1000)
	r.take(manifest.Incremental)
	r.startReceiver()
	r.startVehicle(nil)
	waitUntil(t, 60*time.Second, "both checkpoints complete", func() bool { return r.ship.Stats().Complete == 2 })
	if got, err := r.catalog.Manifests(vehicle); err != nil || len(got) != 2 {
		t.Fatalf("catalog: %d manifests, %v", len(got), err)
	}
}

// TestDeletedWhileQueued: a checkpoint deleted while an older one
// uploads (retention) is skipped cleanly: nothing fails, the others
// complete, and it is gone from the figures at the next look.
func TestDeletedWhileQueued(t *testing.T) {
	r := newRig(t)
	r.appendRandom(100, 1000)
	first := r.take(manifest.Full)
	r.appendRandom(100, 1000)
	second := r.take(manifest.Incremental)
	r.startVehicle(nil) // no receiver yet: the first waits for its acks
	waitUntil(t, 10*time.Second, "the first uploading", func() bool { return r.ship.Busy(first.ID) })
	if r.ship.Busy(second.ID) || !r.ship.Pinned()[first.ID] {
		t.Fatalf("pinned %v while the first uploads", r.ship.Pinned())
	}
	if err := os.RemoveAll(filepath.Join(r.dir, second.ID)); err != nil {
		t.Fatal(err)
	}
	r.startReceiver()
	waitUntil(t, 30*time.Second, "the first complete", func() bool { return r.ship.Uploaded(first.ID) })
	waitUntil(t, 10*time.Second, "the upload over", func() bool { return r.ship.Stats().Current == "" })
	r.ship.Kick()
	waitUntil(t, 10*time.Second, "the second gone from the figures", func() bool {
		st := r.ship.Stats()
		return len(st.Checkpoints) == 1 && st.Complete == 1 && st.Failed == 0
	})
	if ok, _ := r.catalog.Has(vehicle, second.StoreID, second.ID); ok {
		t.Fatal("a deleted checkpoint completed in the cloud")
	}
}
