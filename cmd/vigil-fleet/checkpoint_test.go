package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
)

// ckptFixture is a checkpoint store holding real checkpoints of a real
// store: what the receiver would have written.
type ckptFixture struct {
	root  string // the checkpoint store (--store-dir)
	blobs *blob.Dir
	cat   *blob.Catalog
	ms    []*manifest.Manifest // oldest first
	// health is the source store's health stream after each checkpoint.
	health map[string][]storage.Record
}

var ckptCreated = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)

// newCkptFixture takes full, incremental, differential, full, incremental
// of a store with health records appended before each (random payloads,
// so each checkpoint has several chunks) and loads them into a blob.Dir
// and a blob.Catalog.
func newCkptFixture(t *testing.T) *ckptFixture {
	t.Helper()
	tmp := t.TempDir()
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(tmp, "db")
	s, err := storage.Open(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	f := &ckptFixture{root: filepath.Join(tmp, "checkpoints"), health: map[string][]storage.Record{}}
	if f.blobs, err = blob.NewDir(f.root); err != nil {
		t.Fatal(err)
	}
	if f.cat, err = blob.NewCatalog(f.root); err != nil {
		t.Fatal(err)
	}
	chainDir := filepath.Join(tmp, "chain")
	rng := rand.New(rand.NewPCG(1, 2))
	h := s.Stream(storage.StreamHealth)
	for i, k := range []manifest.Kind{manifest.Full, manifest.Incremental, manifest.Differential, manifest.Full, manifest.Incremental} {
		var last uint64
		for range 1500 - 250*i {
			p := make([]byte, 96)
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			last, _ = h.Append(p)
		}
		if err := h.WaitDurable(context.Background(), last); err != nil {
			t.Fatal(err)
		}
		m, err := checkpoint.Take(context.Background(), s, checkpoint.Options{Dir: chainDir, Kind: k, Vehicle: "veh-1",
			Created: ckptCreated.Add(time.Duration(i) * time.Hour), DaemonVersion: "test"})
		if err != nil {
			t.Fatalf("Take %s: %v", k, err)
		}
		if m.Kind != k {
			t.Fatalf("Take %s took a %s (%s)", k, m.Kind, m.ForcedFull)
		}
		f.health[m.ID] = readHealth(t, s)
		f.upload(t, filepath.Join(chainDir, m.ID))
		f.ms = append(f.ms, m)
	}
	if len(f.ms[0].Chunks) < 2 {
		t.Fatalf("the full has %d chunks; the tests want several", len(f.ms[0].Chunks))
	}
	return f
}

// upload puts a checkpoint directory's chunks and manifest into the
// store, as the receiver does.
func (f *ckptFixture) upload(t *testing.T, dir string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, manifest.Name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(raw, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range m.Chunks {
		b, err := manifest.ReadChunk(manifest.Dir(filepath.Dir(dir)), m, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.blobs.Put(context.Background(), c.SHA256, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.cat.Complete(raw); err != nil {
		t.Fatal(err)
	}
}

func readHealth(t *testing.T, s *storage.Store) []storage.Record {
	t.Helper()
	var out []storage.Record
	var after uint64
	for {
		recs, err := s.Read(storage.StreamHealth, after, 1000, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

func (f *ckptFixture) ids() []string {
	var ids []string
	for _, m := range f.ms {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestCheckpointList: list shows every checkpoint with its kind, base,
// streams' counts, size and a whole chain; once a full's entry is gone,
// the checkpoints built on it show a broken chain.
func TestCheckpointList(t *testing.T) {
	f := newCkptFixture(t)
	out, stderr, err := fleet(t, "checkpoint", "list", "--store-dir", f.root)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, stderr)
	}
	for _, m := range f.ms {
		line := lineWith(out, m.ID)
		want := []string{"veh-1", m.StoreID, string(m.Kind), fmt.Sprintf("health=%d", m.Streams[slices.IndexFunc(m.Streams, func(s manifest.StreamInfo) bool { return s.Name == storage.StreamHealth })].Count), "whole", "KiB", "never"}
		if m.Base != "" {
			want = append(want, m.Base)
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("list line of %s: %q lacks %q", m.ID, line, w)
			}
		}
	}
	t.Log("\n" + out)
	if !strings.Contains(out, "5 checkpoints of 1 vehicles") {
		t.Errorf("list summary:\n%s", out)
	}
	if out, _, _ := fleet(t, "checkpoint", "list", "--store-dir", f.root, "--vehicle", "veh-2"); !strings.Contains(out, "0 checkpoints") {
		t.Errorf("list --vehicle veh-2:\n%s", out)
	}
	if err := f.cat.Delete("veh-1", f.ms[0].StoreID, f.ms[0].ID); err != nil {
		t.Fatal(err)
	}
	out, _, err = fleet(t, "checkpoint", "list", "--store-dir", f.root, "--vehicle", "veh-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range f.ids()[1:3] {
		if line := lineWith(out, id); !strings.Contains(line, "BROKEN") || !strings.Contains(line, "gap") {
			t.Errorf("%s after its full went: %q", id, line)
		}
	}
	for _, id := range f.ids()[3:] {
		if line := lineWith(out, id); !strings.Contains(line, "whole") {
			t.Errorf("%s: %q", id, line)
		}
	}
}

// recent says whether a list line shows a verification with result
// that checked depth within the last minute.
func recent(line, result, depth string) bool {
	return regexp.MustCompile(result + ` [0-9]+s ago \(` + depth + `\)`).MatchString(line)
}

func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestCheckpointVerify: verify --read-data passes on the real
// checkpoints, and fails, naming the checkpoint, the chunk and its offset,
// after a bit of a chunk is flipped, after a chunk is truncated and after
// one is deleted; --subset reads only its share. Each checkpoint's last
// verification (when, how deep, the result) shows in list.
func TestCheckpointVerify(t *testing.T) {
	f := newCkptFixture(t)
	verify := func(args ...string) (string, error) {
		out, _, err := fleet(t, append([]string{"checkpoint", "verify", "--store-dir", f.root, "--vehicle", "veh-1", "--read-data"}, args...)...)
		return out, err
	}
	chunks := 0
	for _, m := range f.ms {
		chunks += len(m.Chunks)
	}
	out, err := verify()
	if err != nil || !strings.Contains(out, fmt.Sprintf("verify: 5 checkpoints, 5 read back (%d chunks", chunks)) || !strings.HasSuffix(out, "0 failures\n") {
		t.Fatalf("verify of whole checkpoints: %v\n%s", err, out)
	}
	listed := func() string {
		out, _, err := fleet(t, "checkpoint", "list", "--store-dir", f.root)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, id := range f.ids() {
		if line := lineWith(listed(), id); !recent(line, "ok", "data") {
			t.Errorf("list after verify --read-data: %q", line)
		}
	}
	m := f.ms[0] // 000001-full, seq 1
	path := f.blobs.Path(m.Chunks[1].SHA256)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	offset := fmt.Sprintf("offset %d", manifest.Offset(m, 1))
	for _, tc := range []struct {
		name   string
		break_ func()
		want   string
	}{
		{"flipped bit", func() { b := slices.Clone(good); b[len(b)/2] ^= 0x10; os.WriteFile(path, b, 0o600) }, "SHA-256"},
		{"truncated", func() { os.WriteFile(path, good[:len(good)-7], 0o600) }, "truncated"},
		{"deleted", func() { os.Remove(path) }, "not found"},
	} {
		tc.break_()
		out, err := verify()
		t.Logf("%s:\n%s", tc.name, out)
		line := lineWith(out, "FAIL")
		for _, w := range []string{m.ID, m.Chunks[1].Name, offset, tc.want} {
			if !strings.Contains(line, w) {
				t.Errorf("%s: the failure %q lacks %q", tc.name, line, w)
			}
		}
		if err == nil || !strings.Contains(out, "verify: 5 checkpoints") || !strings.Contains(out, "1 failures") {
			t.Errorf("%s: %v\n%s", tc.name, err, out)
		}
		if line := lineWith(listed(), m.ID); !recent(line, "FAIL", "data") || !strings.Contains(line, tc.want) {
			t.Errorf("%s: list shows %q", tc.name, line)
		}
		if line := lineWith(listed(), f.ms[1].ID); !recent(line, "ok", "data") {
			t.Errorf("%s: list shows %q for a checkpoint that passed", tc.name, line)
		}
		// The subset of even sequence numbers does not read the full (seq 1).
		if out, err := verify("--subset", "0/2"); err != nil || !strings.Contains(out, "2 checkpoints of subset 0/2") {
			t.Errorf("%s: --subset 0/2: %v\n%s", tc.name, err, out)
		}
		if _, err := verify("--subset", "1/2"); err == nil {
			t.Errorf("%s: --subset 1/2 passed", tc.name)
		}
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := verify(); err != nil {
		t.Errorf("verify after repair: %v\n%s", err, out)
	}
	// Without --read-data only the chain rules are checked: a missing
	// base is found, a missing chunk is not read.
	os.Remove(path)
	f.cat.Delete("veh-1", m.StoreID, m.ID) //nolint:errcheck
	out, _, err = fleet(t, "checkpoint", "verify", "--store-dir", f.root)
	if err == nil || !strings.Contains(out, "chains only") || !strings.Contains(out, "2 failures") || !strings.Contains(lineWith(out, f.ms[1].ID), "gap") {
		t.Errorf("verify without --read-data, the full gone: %v\n%s", err, out)
	}
	if line := lineWith(listed(), f.ms[1].ID); !recent(line, "FAIL", "chain") || !strings.Contains(line, "gap") {
		t.Errorf("list after a chain-only verify: %q", line)
	}
}

// TestCheckpointExport: an export of the newest checkpoint restores
// (storage/checkpoint.Restore) into a store whose records match the
// source's at that checkpoint; so does one --at an older one. A non-empty
// --out is refused and left as it was; a missing chunk fails the export
// and leaves nothing.
func TestCheckpointExport(t *testing.T) {
	f := newCkptFixture(t)
	ctx := context.Background()
	for _, at := range []string{"", f.ms[2].ID} {
		out := filepath.Join(t.TempDir(), "export")
		args := []string{"checkpoint", "export", "--store-dir", f.root, "--vehicle", "veh-1", "--out", out}
		want := f.ms[len(f.ms)-1]
		if at != "" {
			args = append(args, "--at", at)
			want = f.ms[2]
		}
		stdout, stderr, err := fleet(t, args...)
		if err != nil {
			t.Fatalf("export --at %q: %v\n%s", at, err, stderr)
		}
		if !strings.Contains(stdout, "exported 2 checkpoints") {
			t.Errorf("export --at %q: %s", at, stdout)
		}
		ents, _ := os.ReadDir(out)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if wantNames := []string{want.Base, want.ID}; !slices.Equal(names, wantNames) {
			t.Errorf("export --at %q wrote %v", at, names)
		}
		data := filepath.Join(t.TempDir(), "restored")
		chain, err := checkpoint.Restore(ctx, out, "", data, checkpoint.RestoreOptions{Vehicle: "veh-1"})
		if err != nil {
			t.Fatalf("Restore of the export --at %q: %v", at, err)
		}
		if chain[len(chain)-1].ID != want.ID {
			t.Errorf("restored %s, want %s", chain[len(chain)-1].ID, want.ID)
		}
		cfg := storage.DefaultConfig()
		cfg.Dir = data
		r, err := storage.Open(ctx, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
		if err != nil {
			t.Fatal(err)
		}
		got := readHealth(t, r)
		if err := r.Close(ctx); err != nil {
			t.Error(err)
		}
		if !sameRecords(got, f.health[want.ID]) {
			t.Errorf("restored %d health records, the source had %d at %s", len(got), len(f.health[want.ID]), want.ID)
		}
	}

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep-me"), []byte("x"), 0o600) //nolint:errcheck
	_, _, err := fleet(t, "checkpoint", "export", "--store-dir", f.root, "--vehicle", "veh-1", "--out", full)
	if err == nil || !strings.Contains(err.Error(), "--out") || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("export into a non-empty directory: %v", err)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 1 {
		t.Errorf("the refused --out now holds %d entries", len(ents))
	}

	last := f.ms[len(f.ms)-1]
	os.Remove(f.blobs.Path(last.Chunks[0].SHA256)) //nolint:errcheck
	out := filepath.Join(t.TempDir(), "export")
	_, _, err = fleet(t, "checkpoint", "export", "--store-dir", f.root, "--vehicle", "veh-1", "--out", out)
	if err == nil || !strings.Contains(err.Error(), last.ID) || !strings.Contains(err.Error(), last.Chunks[0].Name) {
		t.Errorf("export with a chunk missing: %v", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("a failed export left %s: %v", out, serr)
	}
}

func sameRecords(a, b []storage.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Seq != b[i].Seq || !bytes.Equal(a[i].Payload, b[i].Payload) || !a[i].Wall.Equal(b[i].Wall) {
			return false
		}
	}
	return true
}

// TestCheckpointPrune: --keep-full 1 keeps the newest full and the
// checkpoint built on it and deletes the older chain's entries; then the
// blobs only they referenced go, if old, while a young unreferenced blob
// (an upload in progress) stays; --dry-run changes nothing.
func TestCheckpointPrune(t *testing.T) {
	f := newCkptFixture(t)
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	var all []string
	f.blobs.List(ctx, func(sum string, _ int64, _ time.Time) error { //nolint:errcheck
		all = append(all, sum)
		return os.Chtimes(f.blobs.Path(sum), old, old)
	})
	young := []byte("a chunk of an upload in progress")
	if err := f.blobs.Put(ctx, blob.Sum(young), young); err != nil {
		t.Fatal(err)
	}
	// Another vehicle's checkpoint sharing a chunk of veh-1's old full:
	// that chunk stays.
	shared := f.ms[0].Chunks[0]
	other := *f.ms[4]
	other.Vehicle, other.Chunks, other.Bytes = "veh-2", []manifest.Chunk{shared}, shared.Bytes
	other.Kind, other.ID, other.Base, other.Since = manifest.Full, manifest.ID(other.Seq, manifest.Full), "", 0
	raw, _ := json.Marshal(&other)
	if _, err := f.cat.Complete(raw); err != nil {
		t.Fatal(err)
	}
	keptSums := map[string]bool{shared.SHA256: true, blob.Sum(young): true}
	for _, m := range f.ms[3:] {
		for _, c := range m.Chunks {
			keptSums[c.SHA256] = true
		}
	}

	args := []string{"checkpoint", "prune", "--store-dir", f.root, "--vehicle", "veh-1", "--keep-full", "1"}
	before := listBlobs(t, f.blobs)
	out, stderr, err := fleet(t, append(args, "--dry-run")...)
	if err != nil {
		t.Fatalf("prune --dry-run: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "would delete checkpoint "+f.ms[0].ID) || !slices.Equal(before, listBlobs(t, f.blobs)) {
		t.Errorf("prune --dry-run:\n%s", out)
	}
	if ms, _ := f.cat.Manifests("veh-1"); len(ms) != 5 {
		t.Errorf("prune --dry-run deleted entries: %d left", len(ms))
	}

	out, stderr, err = fleet(t, args...)
	if err != nil {
		t.Fatalf("prune: %v\n%s", err, stderr)
	}
	ms, err := f.cat.Manifests("veh-1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, f.ids()[3:]) {
		t.Errorf("prune kept %v, want %v\n%s", ids, f.ids()[3:], out)
	}
	after := listBlobs(t, f.blobs)
	for _, sum := range after {
		if !keptSums[sum] {
			t.Errorf("prune kept unreferenced old blob %s", sum)
		}
	}
	for sum := range keptSums {
		if !slices.Contains(after, sum) {
			t.Errorf("prune deleted blob %s, which is referenced or young", sum)
		}
	}
	if len(after) >= len(all) {
		t.Errorf("prune deleted no blob: %d before, %d after\n%s", len(all), len(after), out)
	}
	// What is left restores: verify reads every kept chunk.
	if out, _, err := fleet(t, "checkpoint", "verify", "--store-dir", f.root, "--vehicle", "veh-1", "--read-data"); err != nil {
		t.Errorf("verify after prune: %v\n%s", err, out)
	}
}

func listBlobs(t *testing.T, d *blob.Dir) []string {
	t.Helper()
	var sums []string
	if err := d.List(context.Background(), func(sum string, _ int64, _ time.Time) error {
		sums = append(sums, sum)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return sums
}

// TestPrunePlan: retention keeps the newest N fulls of any store, what is
// built on them, and a gapped chain newer than the oldest kept full; it
// deletes older chains and old gapped ones.
func TestPrunePlan(t *testing.T) {
	const a, b = "00000000000000aa", "00000000000000bb"
	cp := func(store string, seq uint64, k manifest.Kind, base uint64, baseKind manifest.Kind) *manifest.Manifest {
		m := &manifest.Manifest{Vehicle: "veh-1", StoreID: store, ID: manifest.ID(seq, k), Seq: seq, Kind: k}
		if k != manifest.Full {
			m.Base = manifest.ID(base, baseKind)
		}
		return m
	}
	F, I, D := manifest.Full, manifest.Incremental, manifest.Differential
	ms := []*manifest.Manifest{
		cp(a, 1, F, 0, ""), cp(a, 2, I, 1, F), cp(a, 3, D, 1, F),
		cp(a, 4, I, 99, F), // gapped, older than the kept fulls
		cp(a, 5, F, 0, ""), cp(a, 6, I, 5, F), cp(a, 7, I, 6, I),
		cp(b, 8, F, 0, ""), cp(b, 9, D, 8, F),
		cp(b, 11, I, 10, I), // gapped, newer: its base may yet arrive
		cp(b, 12, I, 12, F), // builds on itself
	}
	ids := func(ms []*manifest.Manifest) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.StoreID[14:]+":"+m.ID)
		}
		return out
	}
	for _, tc := range []struct {
		n          int
		keep, drop []string
	}{
		{1, []string{"bb:000008-full", "bb:000009-differential", "bb:000011-incremental", "bb:000012-incremental"},
			[]string{"aa:000001-full", "aa:000002-incremental", "aa:000003-differential", "aa:000004-incremental", "aa:000005-full", "aa:000006-incremental", "aa:000007-incremental"}},
		{2, []string{"aa:000005-full", "aa:000006-incremental", "aa:000007-incremental", "bb:000008-full", "bb:000009-differential", "bb:000011-incremental", "bb:000012-incremental"},
			[]string{"aa:000001-full", "aa:000002-incremental", "aa:000003-differential", "aa:000004-incremental"}},
		{9, ids(ms), nil},
	} {
		keep, drop := prunePlan(ms, tc.n)
		if !slices.Equal(ids(keep), tc.keep) || !slices.Equal(ids(drop), tc.drop) {
			t.Errorf("--keep-full %d: keep %v drop %v, want %v and %v", tc.n, ids(keep), ids(drop), tc.keep, tc.drop)
		}
	}
}

// TestCheckpointFlags: bad or missing flags are errors naming the flag;
// --sink gives the default --store-dir; --help explains each command.
func TestCheckpointFlags(t *testing.T) {
	f := newCkptFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"checkpoint"}, "list, verify, export or prune"},
		{[]string{"checkpoint", "frob"}, `unknown command "checkpoint frob"`},
		{[]string{"checkpoint", "list"}, "--store-dir is required"},
		{[]string{"checkpoint", "list", "--store-dir", filepath.Join(f.root, "nope")}, "--store-dir"},
		{[]string{"checkpoint", "list", "--sink", filepath.Join(t.TempDir(), "sink")}, "--store-dir (default from --sink)"},
		{[]string{"checkpoint", "list", "--store-dir", f.root, "--vehicle", "../x"}, "--vehicle"},
		{[]string{"checkpoint", "verify", "--store-dir", f.root, "--subset", "2/2"}, "-subset"},
		{[]string{"checkpoint", "verify", "--store-dir", f.root, "--vehicle", "veh-9"}, "no checkpoints"},
		{[]string{"checkpoint", "export", "--store-dir", f.root, "--out", t.TempDir()}, "--vehicle is required"},
		{[]string{"checkpoint", "export", "--store-dir", f.root, "--vehicle", "veh-1"}, "--out is required"},
		{[]string{"checkpoint", "export", "--store-dir", f.root, "--vehicle", "veh-1", "--at", "x", "--out", t.TempDir()}, "--at"},
		{[]string{"checkpoint", "export", "--store-dir", f.root, "--vehicle", "veh-1", "--at", "000099-full", "--out", t.TempDir()}, "--at 000099-full"},
		{[]string{"checkpoint", "export", "--store-dir", f.root, "--vehicle", "veh-1", "--store", "00000000000000ff", "--out", t.TempDir()}, "--store"},
		{[]string{"checkpoint", "prune", "--store-dir", f.root, "--vehicle", "veh-1"}, "--keep-full"},
		{[]string{"checkpoint", "prune", "--store-dir", f.root, "--keep-full", "1"}, "--vehicle is required"},
		{[]string{"checkpoint", "prune", "--store-dir", f.root, "--vehicle", "veh-1", "--keep-full", "1", "--grace", "-1h"}, "--grace"},
	} {
		_, stderr, err := fleet(t, tc.args...)
		if err == nil || !strings.Contains(err.Error()+stderr, tc.want) {
			t.Errorf("%q: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
	// --sink's sibling "checkpoints" is the default store.
	sink := filepath.Join(filepath.Dir(f.root), "sink")
	if defaultCheckpointDir(sink) != f.root {
		t.Fatalf("defaultCheckpointDir(%s) = %s, want %s", sink, defaultCheckpointDir(sink), f.root)
	}
	if out, _, err := fleet(t, "checkpoint", "list", "--sink", sink); err != nil || !strings.Contains(out, "5 checkpoints") {
		t.Errorf("list --sink: %v\n%s", err, out)
	}
	for _, sub := range []string{"list", "verify", "export", "prune"} {
		_, stderr, err := fleet(t, "checkpoint", sub, "--help")
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "usage: vigil-fleet checkpoint "+sub) || !strings.Contains(stderr, "-store-dir") {
			t.Errorf("checkpoint %s --help: %v\n%s", sub, err, stderr)
		}
	}
	if _, stderr, err := fleet(t, "checkpoint", "--help"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "checkpoint prune") {
		t.Errorf("checkpoint --help: %v", err)
	}
}
