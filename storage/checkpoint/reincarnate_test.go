package checkpoint

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage"
)

// TestRestoreReincarnates: a restore with Reincarnate is a new incarnation
// (a new store id, the lineage of the checkpoint, per stream the last
// sequence number the manifest lists) that appends after the parent's
// last, keeps the parent's records and cursors, and whose next
// checkpoint in the parent's chain is a full; without Reincarnate the
// restore keeps the parent's id and has no lineage.
func TestRestoreReincarnates(t *testing.T) {
	chain, ms := smallChain(t)
	last := ms[len(ms)-1]
	var parent uint64
	fmt.Sscanf(last.StoreID, "%x", &parent)
	root := t.TempDir()
	target := filepath.Join(root, "store")
	at := time.Date(2026, 12, 5, 8, 30, 0, 0, time.UTC)
	r, err := RestoreChain(context.Background(), chain, "", target, RestoreOptions{Reincarnate: true, RestoredAt: at, Vehicle: "veh-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Chain) != 2 || r.Chain[1].ID != last.ID || r.Store == 0 || r.Store == parent || r.Lineage == nil {
		t.Fatalf("restored %d checkpoints, store %016x (parent %016x), lineage %v", len(r.Chain), r.Store, parent, r.Lineage)
	}
	want := map[string]uint64{}
	for _, si := range last.Streams {
		want[si.Name] = si.Last()
	}
	l := *r.Lineage
	if l.Parent != parent || l.Checkpoint != last.ID || l.Vehicle != "veh-1" || !l.RestoredAt.Equal(at) || !maps.Equal(l.ParentLast, want) {
		t.Errorf("lineage %+v, want parent %016x, checkpoint %s, heads %v", l, parent, last.ID, want)
	}
	if want[storage.StreamHealth] != 12000 {
		t.Errorf("health's last in the checkpoint is %d, want the 12000 appended", want[storage.StreamHealth])
	}
	checkRestored(t, target, last, r.Store, nil)

	s := openStore(t, target, nil)
	got, ok := s.Lineage()
	if !ok || got.Parent != parent || got.Checkpoint != last.ID || !maps.Equal(got.ParentLast, want) || s.StoreID() != r.Store {
		t.Errorf("the opened store: id %016x, lineage %+v, %v", s.StoreID(), got, ok)
	}
	if seq, ok := s.Stream(storage.StreamHealth).Append([]byte("after the restore")); !ok || seq != want[storage.StreamHealth]+1 {
		t.Errorf("first append after the restore: seq %d, want %d", seq, want[storage.StreamHealth]+1)
	}
	if err := s.Stream(storage.StreamHealth).WaitDurable(context.Background(), want[storage.StreamHealth]+1); err != nil {
		t.Fatal(err)
	}
	// The next checkpoint, asked for as incremental in the parent's
	// chain, is full: its base is another store's.
	m := take(t, s, chain, Incremental)
	if m.Kind != Full || !strings.Contains(m.ForcedFull, "of store "+last.StoreID) || m.StoreID != fmt.Sprintf("%016x", r.Store) {
		t.Errorf("the restored store's first checkpoint: %s, forced full %q, store %s", m.Kind, m.ForcedFull, m.StoreID)
	}

	// Restored again from its own checkpoint, it is the parent.
	again := filepath.Join(root, "again")
	r2, err := RestoreChain(context.Background(), chain, m.ID, again, RestoreOptions{Reincarnate: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Chain) != 1 || r2.Lineage.Parent != r.Store || r2.Store == r.Store || r2.Lineage.ParentLast[storage.StreamHealth] != want[storage.StreamHealth]+1 || r2.Lineage.RestoredAt.IsZero() {
		t.Errorf("restored from the restored store's checkpoint: %+v, store %016x", r2.Lineage, r2.Store)
	}

	// A plain restore is a copy.
	plain := filepath.Join(root, "plain")
	r3, err := RestoreChain(context.Background(), chain, last.ID, plain, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r3.Store != parent || r3.Lineage != nil {
		t.Errorf("a plain restore: store %016x, lineage %v", r3.Store, r3.Lineage)
	}
	p := openStore(t, plain, nil)
	if _, ok := p.Lineage(); ok || p.StoreID() != parent {
		t.Errorf("a plain restore opened with id %016x, lineage %v", p.StoreID(), ok)
	}
}

// TestRestoreReincarnateRefusedLeavesNothing: a lineage that does not fit
// the restored store (here a manifest naming a stream the store lacks,
// with records that still match) fails the restore before the rename.
func TestRestoreReincarnateRefusedLeavesNothing(t *testing.T) {
	chain, ms := smallChain(t)
	c := filepath.Join(t.TempDir(), "chain")
	copyTree(t, chain, c)
	editManifest(t, filepath.Join(c, ms[3].ID), func(m *Manifest) {
		m.Streams = append(m.Streams, StreamInfo{Name: "ghost", ID: 250, Ranges: []Range{}})
	})
	target := filepath.Join(t.TempDir(), "store")
	_, err := RestoreChain(context.Background(), c, "", target, RestoreOptions{Reincarnate: true})
	if err == nil || !strings.Contains(err.Error(), "stream ghost") || !strings.Contains(err.Error(), ms[3].ID) {
		t.Fatalf("err %v, want the ghost stream and checkpoint %s named", err, ms[3].ID)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target exists after a refused reincarnation: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(target))
	if len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
