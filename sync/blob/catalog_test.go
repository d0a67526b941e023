package blob

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

const (
	storeA = "00000000000000aa"
	storeB = "00000000000000bb"
)

// checkpoint makes a manifest whose stream is payload, in chunks of one
// deflated piece each, and puts the chunks into s (when s is not nil).
func checkpoint(t *testing.T, s Store, vehicle, store string, seq uint64, k manifest.Kind, base string, payload []byte, pieces int) (*manifest.Manifest, []byte) {
	t.Helper()
	m := &manifest.Manifest{Format: manifest.FormatVersion, Vehicle: vehicle, StoreID: store, ID: manifest.ID(seq, k), Seq: seq, Kind: k,
		Base: base, SnapshotTS: seq * 10, RawBytes: int64(len(payload)), SHA256: Sum(payload),
		Created: time.Date(2025, 3, 1, 0, 0, int(seq), 0, time.UTC), DaemonVersion: "test"}
	if base != "" {
		m.Since = (seq - 1) * 10
	}
	for i := range pieces {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestSpeed)
		w.Write(payload[i*len(payload)/pieces : (i+1)*len(payload)/pieces]) //nolint:errcheck
		w.Close()                                                           //nolint:errcheck
		m.Chunks = append(m.Chunks, manifest.Chunk{Name: manifest.ChunkName(i), Bytes: int64(b.Len()), SHA256: Sum(b.Bytes())})
		m.Bytes += int64(b.Len())
		if s != nil {
			if err := s.Put(context.Background(), Sum(b.Bytes()), b.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return m, raw
}

func newCatalog(t *testing.T) (*Catalog, string) {
	t.Helper()
	root := t.TempDir()
	c, err := NewCatalog(root)
	if err != nil {
		t.Fatal(err)
	}
	return c, root
}

// files lists every file under root (relative), for "nothing changed".
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return err
	})
	return out
}

// TestCatalogRoundTrip: a completed checkpoint is recorded under
// checkpoints/<vehicle>/<store>/<id>.json with the bytes as sent, and
// reads back; completing it again is a no-op; other bytes under its id
// are refused (ErrConflict) and change nothing; Delete removes it.
func TestCatalogRoundTrip(t *testing.T) {
	c, root := newCatalog(t)
	m, raw := checkpoint(t, nil, "veh-1", storeA, 1, manifest.Full, "", []byte("stream"), 1)
	got, err := c.Complete(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.SHA256 != m.SHA256 {
		t.Errorf("Complete returned %+v", got)
	}
	path := filepath.Join(root, "checkpoints", "veh-1", storeA, "000001-full.json")
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, raw) {
		t.Fatalf("%s: %v, not the bytes sent", path, err)
	}
	if _, err := c.Complete(raw); err != nil {
		t.Errorf("second Complete: %v", err)
	}
	other := bytes.Replace(raw, []byte(`"daemon_version": "test"`), []byte(`"daemon_version": "other"`), 1)
	if _, err := c.Complete(other); !errors.Is(err, ErrConflict) {
		t.Errorf("Complete with other bytes: %v, want ErrConflict", err)
	}
	if b, err := c.Raw("veh-1", storeA, m.ID); err != nil || !bytes.Equal(b, raw) {
		t.Errorf("Raw after a refused Complete: %v", err)
	}
	if ok, err := c.Has("veh-1", storeA, m.ID); !ok || err != nil {
		t.Errorf("Has: %v %v", ok, err)
	}
	ms, err := c.Manifests("veh-1")
	if err != nil || len(ms) != 1 || ms[0].ID != m.ID {
		t.Fatalf("Manifests: %v %v", ms, err)
	}
	if vs, err := c.Vehicles(); err != nil || !slices.Equal(vs, []string{"veh-1"}) {
		t.Errorf("Vehicles: %v %v", vs, err)
	}
	if err := c.Delete("veh-1", storeA, m.ID); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Has("veh-1", storeA, m.ID); ok {
		t.Error("Has after Delete")
	}
	if _, err := c.Raw("veh-1", storeA, m.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Raw after Delete: %v", err)
	}
	if err := c.Delete("veh-1", storeA, m.ID); err != nil {
		t.Errorf("Delete again: %v", err)
	}
}

// TestCatalogRefusesTraversal: a manifest whose vehicle or id would leave
// the catalog's directory, or that does not parse, is refused and writes
// nothing; so are such names given to Has, Raw, Delete and Manifests.
func TestCatalogRefusesTraversal(t *testing.T) {
	c, root := newCatalog(t)
	before := files(t, root)
	_, raw := checkpoint(t, nil, "veh-1", storeA, 1, manifest.Full, "", []byte("s"), 1)
	for name, b := range map[string][]byte{
		"vehicle ../..":  bytes.Replace(raw, []byte(`"veh-1"`), []byte(`"../../escape"`), 1),
		"vehicle a/b":    bytes.Replace(raw, []byte(`"veh-1"`), []byte(`"a/b"`), 1),
		"vehicle empty":  bytes.Replace(raw, []byte(`"veh-1"`), []byte(`""`), 1),
		"id ../x":        bytes.Replace(raw, []byte(`"id": "000001-full"`), []byte(`"id": "../000001-full"`), 1),
		"store ../":      bytes.Replace(raw, []byte(storeA), []byte("../../../../../x"), 1),
		"not a manifest": []byte("{"),
	} {
		if _, err := c.Complete(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if after := files(t, root); !slices.Equal(before, after) {
		t.Errorf("refused manifests wrote %v", after)
	}
	if _, err := c.Has("..", storeA, "000001-full"); err == nil {
		t.Error("Has(..) accepted")
	}
	if err := c.Delete("veh-1", "../"+storeA[3:], "000001-full"); err == nil {
		t.Error("Delete with a store ../ accepted")
	}
	if _, err := c.Raw("veh-1", storeA, "../../x"); err == nil {
		t.Error("Raw with an id ../../x accepted")
	}
	if _, err := c.Manifests("../checkpoints"); err == nil {
		t.Error("Manifests(../checkpoints) accepted")
	}
}

// TestManifestsAcrossStores: a vehicle's checkpoints of two stores (a
// restored unit's new incarnation) come back together, oldest first;
// a manifest whose contents disagree with its file's place is an error
// naming the file.
func TestManifestsAcrossStores(t *testing.T) {
	c, root := newCatalog(t)
	var want []string
	for _, cp := range []struct {
		store string
		seq   uint64
		kind  manifest.Kind
		base  string
	}{
		{storeB, 4, manifest.Full, ""},
		{storeA, 1, manifest.Full, ""},
		{storeA, 2, manifest.Incremental, "000001-full"},
		{storeB, 5, manifest.Differential, "000004-full"},
		{storeA, 3, manifest.Differential, "000001-full"},
	} {
		_, raw := checkpoint(t, nil, "veh-1", cp.store, cp.seq, cp.kind, cp.base, []byte("x"), 1)
		if _, err := c.Complete(raw); err != nil {
			t.Fatal(err)
		}
	}
	_, raw := checkpoint(t, nil, "veh-2", storeA, 1, manifest.Full, "", []byte("y"), 1)
	if _, err := c.Complete(raw); err != nil {
		t.Fatal(err)
	}
	want = []string{"000001-full", "000002-incremental", "000003-differential", "000004-full", "000005-differential"}
	ms, err := c.Manifests("veh-1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("Manifests: %v, want %v", ids, want)
	}
	if ms, err := c.Manifests("veh-3"); err != nil || len(ms) != 0 {
		t.Errorf("Manifests of an unknown vehicle: %v %v", ms, err)
	}
	if vs, _ := c.Vehicles(); !slices.Equal(vs, []string{"veh-1", "veh-2"}) {
		t.Errorf("Vehicles: %v", vs)
	}
	// veh-2's manifest copied under veh-1's store A as another id.
	moved := filepath.Join(root, "checkpoints", "veh-1", storeA, "000009-full.json")
	if err := os.WriteFile(moved, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Manifests("veh-1"); err == nil || !strings.Contains(err.Error(), moved) {
		t.Errorf("a misplaced manifest: %v, want an error naming %s", err, moved)
	}
}

// TestSourceReadsChunks: Source serves a checkpoint's chunks from the
// store to manifest.Verify; a missing chunk fails naming the checkpoint,
// the chunk and its offset.
func TestSourceReadsChunks(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	payload := bytes.Repeat([]byte("telemetry record "), 500)
	m, _ := checkpoint(t, d, "veh-1", storeA, 1, manifest.Full, "", payload, 3)
	if err := manifest.Verify(ctx, Source(ctx, d), m); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := d.Delete(ctx, m.Chunks[2].SHA256); err != nil {
		t.Fatal(err)
	}
	err := manifest.Verify(ctx, Source(ctx, d), m)
	want := []string{"000001-full", "chunk-000002", "offset", "not found"}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Verify with a chunk missing: %v, want %q in it", err, w)
		}
	}
}

// TestVerificationRecord: a checkpoint's last verification is kept,
// replaced by the next, read back as written, refused for a bad name, and
// deleted with the checkpoint; a checkpoint never verified says so, and
// the record does not show up as a manifest.
func TestVerificationRecord(t *testing.T) {
	cat, _ := newCatalog(t)
	pm, raw := checkpoint(t, nil, "veh-1", storeA, 1, manifest.Full, "", []byte("stream"), 1)
	if _, err := cat.Complete(raw); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := cat.LastVerification("veh-1", pm.StoreID, pm.ID); ok || err != nil {
		t.Fatalf("never verified: %v %v", ok, err)
	}
	at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	for _, v := range []Verification{
		{At: at, ReadData: true, OK: true},
		{At: at.Add(time.Hour), OK: false, Problem: "chunk chunk-000001: SHA-256 mismatch"},
	} {
		if err := cat.RecordVerification("veh-1", pm.StoreID, pm.ID, v); err != nil {
			t.Fatal(err)
		}
		got, ok, err := cat.LastVerification("veh-1", pm.StoreID, pm.ID)
		if !ok || err != nil || got != v {
			t.Errorf("read back %+v %v %v, want %+v", got, ok, err, v)
		}
	}
	if ms, err := cat.Manifests("veh-1"); err != nil || len(ms) != 1 {
		t.Errorf("manifests beside a verification record: %d, %v", len(ms), err)
	}
	if err := cat.RecordVerification("../x", pm.StoreID, pm.ID, Verification{}); err == nil {
		t.Error("a verification of vehicle ../x was recorded")
	}
	if err := cat.Delete("veh-1", pm.StoreID, pm.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := cat.LastVerification("veh-1", pm.StoreID, pm.ID); ok {
		t.Error("the verification outlived its checkpoint")
	}
}
