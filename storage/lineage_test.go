package storage

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// rawBadger opens a closed store's directory as plain Badger, as
// storage/checkpoint does with a restore.
func rawBadger(t *testing.T, cfg Config) *badger.DB {
	t.Helper()
	db, err := badger.Open(BadgerOptions(cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func setU64(t *testing.T, db *badger.DB, key []byte, v uint64) {
	t.Helper()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, u64(v)) }); err != nil {
		t.Fatal(err)
	}
}

// TestReincarnate: a store whose m/last and cursor run ahead of its
// records (what a checkpoint's backup, not one snapshot, can restore)
// becomes a new incarnation whose last sequence numbers are the
// lineage's, whose cursors are at most those, which appends from parent
// last + 1 and reports its lineage after Open and after a restart.
func TestReincarnate(t *testing.T) {
	cfg := testConfig(t)
	s := openTest(t, cfg)
	parent := s.StoreID()
	if _, ok := s.Lineage(); ok {
		t.Error("a fresh store has a lineage")
	}
	h := s.Stream(StreamHealth)
	for i := range 100 {
		h.Append([]byte{byte(i)})
	}
	if err := h.WaitDurable(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(StreamHealth, 40); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	db := rawBadger(t, cfg)
	var healthID, logsID uint8
	db.View(func(txn *badger.Txn) error {
		defs, err := streamIDs(txn)
		healthID, logsID = defs[StreamHealth], defs[StreamLogs]
		return err
	})
	setU64(t, db, idKey(prefixLast, healthID), 500) // ahead of the records
	setU64(t, db, idKey(prefixCursor, logsID), 300) // ahead of everything
	setU64(t, db, idKey(prefixLast, logsID), 300)   // the logs records are gone
	at := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	l := Lineage{Parent: parent, Checkpoint: "000003-incremental", Vehicle: "veh-1", RestoredAt: at,
		ParentLast: map[string]uint64{StreamHealth: 100, StreamLogs: 0}}
	id, err := Reincarnate(db, l)
	if err != nil {
		t.Fatal(err)
	}
	if id == 0 || id == parent {
		t.Fatalf("new store id %016x (parent %016x)", id, parent)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 {
		r, err := Open(context.Background(), cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := r.Lineage()
		if !ok || got.Parent != parent || got.Checkpoint != l.Checkpoint || got.Vehicle != "veh-1" || !got.RestoredAt.Equal(at) || !maps.Equal(got.ParentLast, l.ParentLast) {
			t.Errorf("round %d: lineage %+v, %v", round, got, ok)
		}
		if r.StoreID() != id {
			t.Errorf("round %d: store id %016x, Reincarnate said %016x", round, r.StoreID(), id)
		}
		if round == 0 {
			if c, _ := r.Cursor(StreamHealth); c != 40 {
				t.Errorf("health cursor %d, want 40 (below last: kept)", c)
			}
			if c, _ := r.Cursor(StreamLogs); c != 0 {
				t.Errorf("logs cursor %d, want 0 (at most last)", c)
			}
			if seq, ok := r.Stream(StreamHealth).Append([]byte("new")); !ok || seq != 101 {
				t.Errorf("first append after the restore: seq %d, want 101", seq)
			}
			if seq, ok := r.Stream(StreamLogs).Append([]byte("new")); !ok || seq != 1 {
				t.Errorf("first log after the restore: seq %d, want 1", seq)
			}
			if err := r.Stream(StreamHealth).WaitDurable(context.Background(), 101); err != nil {
				t.Fatal(err)
			}
			if recs := readAll(t, r, StreamHealth); len(recs) != 101 || recs[100].Seq != 101 || string(recs[100].Payload) != "new" {
				t.Errorf("%d health records readable, want the 100 restored and the new one", len(recs))
			}
		}
		// The lineage is a copy.
		got.ParentLast[StreamHealth] = 7
		if again, _ := r.Lineage(); again.ParentLast[StreamHealth] != 100 {
			t.Error("Lineage returned the store's own map")
		}
		closeStore(t, r)
	}
}

// TestReincarnateRefuses: a lineage of another store, one naming a
// stream the store lacks, and a directory that is no store change
// nothing.
func TestReincarnateRefuses(t *testing.T) {
	cfg := testConfig(t)
	s := openTest(t, cfg)
	parent := s.StoreID()
	closeStore(t, s)
	db := rawBadger(t, cfg)
	for _, c := range []struct {
		l    Lineage
		want string
	}{
		{Lineage{Parent: parent + 1, Checkpoint: "000001-full"}, "lineage's parent"},
		{Lineage{Parent: parent, Checkpoint: "000001-full", ParentLast: map[string]uint64{"nope": 3}}, "stream nope"},
		{Lineage{Parent: parent}, "without a parent store or checkpoint"},
	} {
		if _, err := Reincarnate(db, c.l); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.l, err, c.want)
		}
	}
	db.Close()
	r := openTest(t, cfg)
	if _, ok := r.Lineage(); ok || r.StoreID() != parent {
		t.Errorf("a refused Reincarnate changed the store: id %016x (was %016x)", r.StoreID(), parent)
	}

	empty := testConfig(t)
	db = rawBadger(t, empty)
	defer db.Close()
	if _, err := Reincarnate(db, Lineage{Parent: 1, Checkpoint: "000001-full"}); err == nil || !strings.Contains(err.Error(), "000001-full") {
		t.Errorf("an empty directory: %v", err)
	}
}
