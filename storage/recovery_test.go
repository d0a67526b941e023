package storage

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// fillAndClose creates a store in cfg.Dir with a few hundred records of
// 200 bytes that do not compress, in 30 group commits (so 30 segments
// and tables with many blocks), and returns its id.
func fillAndClose(t *testing.T, cfg Config) uint64 {
	t.Helper()
	s, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	inf := s.Stream(StreamInference)
	p := make([]byte, 200)
	for i := range 300 {
		for j := range p {
			p[j] = byte((i*7919 + j*104729) >> 3)
		}
		seq, _ := inf.Append(p)
		if i%10 == 9 {
			if err := inf.WaitDurable(context.Background(), seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	id := s.StoreID()
	closeStore(t, s)
	return id
}

// flatten pushes the records from the memtable into tables.
func flatten(t *testing.T, cfg Config) {
	t.Helper()
	db, err := badger.Open(BadgerOptions(cfg, nil).WithCompactL0OnClose(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRecovery(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, cfg Config)
		cause   string
	}{
		{
			name: "garbage manifest",
			corrupt: func(t *testing.T, cfg Config) {
				if err := os.WriteFile(filepath.Join(cfg.Dir, "MANIFEST"), []byte("this is not a manifest"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			cause: "anifest",
		},
		{
			name: "truncated tables",
			corrupt: func(t *testing.T, cfg Config) {
				flatten(t, cfg)
				ssts, _ := filepath.Glob(filepath.Join(cfg.Dir, "*.sst"))
				if len(ssts) == 0 {
					t.Fatal("no tables to truncate")
				}
				for _, p := range ssts {
					if err := os.Truncate(p, 100); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
		{
			name: "opens that died",
			corrupt: func(t *testing.T, cfg Config) {
				if err := os.WriteFile(filepath.Join(cfg.Dir, openingMarker), []byte("3\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			cause: "died before finishing",
		},
		{
			name: "another storage format",
			corrupt: func(t *testing.T, cfg Config) {
				db, err := badger.Open(BadgerOptions(cfg, nil))
				if err != nil {
					t.Fatal(err)
				}
				err = db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(99)) })
				if cerr := db.Close(); err != nil || cerr != nil {
					t.Fatal(err, cerr)
				}
			},
			cause: "storage format 99",
		},
		{
			name: "not a storage directory",
			corrupt: func(t *testing.T, cfg Config) {
				if err := os.RemoveAll(cfg.Dir); err != nil {
					t.Fatal(err)
				}
				db, err := badger.Open(BadgerOptions(cfg, nil))
				if err != nil {
					t.Fatal(err)
				}
				err = db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("hello"), []byte("world")) })
				if cerr := db.Close(); err != nil || cerr != nil {
					t.Fatal(err, cerr)
				}
			},
			cause: "not a Vigil storage directory",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			oldID := fillAndClose(t, cfg)
			tc.corrupt(t, cfg)

			s := openTest(t, cfg)
			r := s.Recovered()
			if r == nil {
				t.Fatal("Open did not recover")
			}
			// The fresh store is a new incarnation: its sequence numbers
			// restart at 1, so it must not share the old one's id.
			if s.StoreID() == 0 || s.StoreID() == oldID {
				t.Errorf("store id %016x after recovery; the moved-aside store's was %016x", s.StoreID(), oldID)
			}
			t.Logf("cause: %v", r.Cause)
			if !strings.Contains(r.Cause.Error(), tc.cause) {
				t.Errorf("cause %q does not mention %q", r.Cause, tc.cause)
			}
			if !strings.HasPrefix(r.MovedTo, cfg.Dir+".corrupt-") {
				t.Errorf("moved to %s", r.MovedTo)
			}
			if _, err := os.Stat(filepath.Join(r.MovedTo, "MANIFEST")); err != nil {
				t.Errorf("the old directory is not at %s: %v", r.MovedTo, err)
			}
			// A fresh store that works.
			inf := s.Stream(StreamInference)
			seq, ok := inf.Append([]byte("fresh"))
			if !ok || seq != 1 {
				t.Fatalf("Append in the fresh store = %d, %v", seq, ok)
			}
			if err := inf.WaitDurable(context.Background(), seq); err != nil {
				t.Fatal(err)
			}
			ev := s.Stream(StreamEvents)
			if err := ev.WaitDurable(context.Background(), 2); err != nil {
				t.Fatal(err)
			}
			evs := readAll(t, s, StreamEvents)
			if len(evs) != 2 || evs[1].Kind != KindNotice {
				t.Fatalf("events %+v", evs)
			}
			var n RecoveredNotice
			if err := json.Unmarshal(evs[1].Payload, &n); err != nil || n.Event != "storage.recovered" || n.MovedTo != r.MovedTo {
				t.Errorf("recovered notice %s (%v)", evs[1].Payload, err)
			}
		})
	}
}

func TestRecoveryKeepsFewCorruptDirectories(t *testing.T) {
	cfg := testConfig(t)
	cfg.KeepCorrupt = 1
	// Fake older moved-aside directories.
	for _, name := range []string{".corrupt-20200101T000000Z", ".corrupt-20210101T000000Z"} {
		if err := os.MkdirAll(cfg.Dir+name, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	fillAndClose(t, cfg)
	if err := os.WriteFile(filepath.Join(cfg.Dir, "MANIFEST"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, cfg)
	left, _ := filepath.Glob(cfg.Dir + ".corrupt-*")
	if len(left) != 1 || left[0] != s.Recovered().MovedTo {
		t.Errorf("corrupt directories left: %v; want only %s", left, s.Recovered().MovedTo)
	}
}

// TestOpenAfterKillBetweenCreateAndSize leaves the empty memtable log and
// value-log file that a kill between creating and sizing them leaves, and
// checks that the store opens cleanly with its records.
func TestOpenAfterKillBetweenCreateAndSize(t *testing.T) {
	cfg := testConfig(t)
	fillAndClose(t, cfg)
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		if err := os.WriteFile(filepath.Join(cfg.Dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := openTest(t, cfg)
	if r := s.Recovered(); r != nil {
		t.Fatalf("recovered: %v", r.Cause)
	}
	if n := len(readAll(t, s, StreamInference)); n != 300 {
		t.Errorf("%d records, want 300", n)
	}
}

func TestStoreID(t *testing.T) {
	cfg := testConfig(t)
	first := fillAndClose(t, cfg)
	if first == 0 {
		t.Fatal("a fresh store has id 0")
	}
	// Reopening keeps it.
	for range 2 {
		s, err := Open(context.Background(), cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if s.StoreID() != first || s.Recovered() != nil {
			t.Errorf("reopened store has id %016x, want %016x", s.StoreID(), first)
		}
		closeStore(t, s)
	}
	// Another store has another.
	if other := fillAndClose(t, testConfig(t)); other == 0 || other == first {
		t.Errorf("two stores have ids %016x and %016x", first, other)
	}

	// A store an earlier build made has no id: it gets one on open, and
	// keeps that one, with its records and sequence numbers.
	db, err := badger.Open(BadgerOptions(cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error { return txn.Delete(keyID) })
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	s, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	given := s.StoreID()
	if given == 0 || given == first || s.Recovered() != nil {
		t.Errorf("store without an id: given %016x (the deleted one was %016x), recovered %v", given, first, s.Recovered())
	}
	if n := len(readAll(t, s, StreamInference)); n != 300 {
		t.Errorf("%d records, want 300", n)
	}
	closeStore(t, s)
	s = openTest(t, cfg)
	if s.StoreID() != given {
		t.Errorf("id %016x after reopen, want %016x", s.StoreID(), given)
	}
}
