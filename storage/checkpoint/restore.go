package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// RestoreOptions qualify Restore.
type RestoreOptions struct {
	// Vehicle, if set, is the vehicle the chain must belong to.
	Vehicle string
	// Force restores over a non-empty target directory, which is moved to
	// <dataDir>.before-restore-<checkpoint id> once the restore succeeded.
	Force bool
	// Badger returns the options to load with; nil means
	// storage.BadgerOptions of storage.DefaultConfig.
	Badger func(dir string) badger.Options
	// Reincarnate makes the restored store a new incarnation of the
	// checkpoint's (storage.Reincarnate): a new store id and a lineage
	// naming the parent store, the checkpoint and each stream's last
	// sequence number in it, written into the temporary directory before
	// it is renamed into place. Without it the restore is a copy that
	// keeps the parent's store id (for tests and benchmarks; a vehicle
	// must never upload from one while the parent's records are in the
	// cloud).
	Reincarnate bool
	// RestoredAt dates the lineage; zero means now.
	RestoredAt time.Time
}

// Restored is what RestoreChain restored.
type Restored struct {
	// Chain is the chain restored, full first.
	Chain []*Manifest
	// Store is the restored store's id: a new one when reincarnated, the
	// checkpoint's otherwise.
	Store uint64
	// Lineage is the restored store's lineage when reincarnated.
	Lineage *storage.Lineage
}

// ErrTargetNotEmpty is returned when dataDir holds anything and Force is
// not set.
var ErrTargetNotEmpty = errors.New("restore target is not empty")

// Restore rebuilds in dataDir the store that the chain in chainDir ending
// at checkpoint at (the newest when empty) describes, and returns the
// chain it restored, full first. It verifies every chunk before loading
// any, loads into a temporary directory next to dataDir, checks the
// records against at's manifest, and renames it into place; on any error
// it leaves no target directory behind and a pre-existing one untouched.
func Restore(ctx context.Context, chainDir, at, dataDir string, opts RestoreOptions) ([]*Manifest, error) {
	r, err := RestoreChain(ctx, chainDir, at, dataDir, opts)
	if err != nil {
		return nil, err
	}
	return r.Chain, nil
}

// RestoreChain is Restore, returning the restored store's id and, with
// opts.Reincarnate, its lineage as well.
func RestoreChain(ctx context.Context, chainDir, at, dataDir string, opts RestoreOptions) (*Restored, error) {
	chain, err := Chain(chainDir, at, opts.Vehicle)
	if err != nil {
		return nil, err
	}
	last := chain[len(chain)-1]
	if !opts.Force {
		if err := checkEmpty(dataDir); err != nil {
			return nil, err
		}
	}
	for _, m := range chain {
		if err := manifest.Verify(ctx, manifest.Dir(chainDir), m); err != nil {
			return nil, err
		}
	}
	tmp := filepath.Join(filepath.Dir(dataDir), "."+filepath.Base(dataDir)+".restore-"+last.ID)
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("restore %s: %w", last.ID, err)
	}
	r := &Restored{Chain: chain}
	if r.Store, err = strconv.ParseUint(last.StoreID, 16, 64); err != nil || r.Store == 0 {
		return nil, fmt.Errorf("%w: checkpoint %s: store id %q", ErrChain, last.ID, last.StoreID)
	}
	if opts.Reincarnate {
		r.Lineage = lineageOf(last, opts.RestoredAt, r.Store)
	}
	id, err := load(ctx, chainDir, chain, tmp, opts, r.Lineage)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if r.Lineage != nil {
		r.Store = id
	}
	if err := install(tmp, dataDir, last.ID); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("restore %s: %w", last.ID, err)
	}
	return r, nil
}

// lineageOf is the lineage of a store restored from m, the store parent's
// checkpoint.
func lineageOf(m *Manifest, at time.Time, parent uint64) *storage.Lineage {
	if at.IsZero() {
		at = time.Now()
	}
	l := &storage.Lineage{Parent: parent, Checkpoint: m.ID, Vehicle: m.Vehicle, RestoredAt: at, ParentLast: map[string]uint64{}}
	for _, s := range m.Streams {
		l.ParentLast[s.Name] = s.Last()
	}
	return l
}

func checkEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: %s (%d entries); use force to move it aside", ErrTargetNotEmpty, dir, len(ents))
	}
	return nil
}

// load loads the chain into a fresh Badger directory and checks its
// records against the last manifest; with a lineage, it then
// reincarnates the store and returns its new id.
func load(ctx context.Context, chainDir string, chain []*Manifest, dir string, opts RestoreOptions, l *storage.Lineage) (id uint64, err error) {
	last := chain[len(chain)-1]
	bopts := func(d string) badger.Options {
		cfg := storage.DefaultConfig()
		cfg.Dir = d
		return storage.BadgerOptions(cfg, nil)
	}
	if opts.Badger != nil {
		bopts = opts.Badger
	}
	db, err := badger.Open(bopts(dir))
	if err != nil {
		return 0, fmt.Errorf("restore %s: open %s: %w", last.ID, dir, err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("restore %s: close: %w", last.ID, cerr)
		}
	}()
	for _, m := range chain {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := db.Load(manifest.Reader(manifest.Dir(chainDir), m), 256); err != nil {
			return 0, fmt.Errorf("restore: load checkpoint %s: %w", m.ID, err)
		}
	}
	got, err := inventory(db, last.Streams)
	if err != nil {
		return 0, fmt.Errorf("restore %s: count the records: %w", last.ID, err)
	}
	for _, want := range last.Streams {
		g := got[want.ID]
		if g.Count != want.Count || !slices.Equal(g.Ranges, want.Ranges) {
			return 0, fmt.Errorf("%w: restore %s: stream %s holds %d records %v, the manifest says %d %v", ErrChain, last.ID, want.Name, g.Count, g.Ranges, want.Count, want.Ranges)
		}
		delete(got, want.ID)
	}
	for id, g := range got {
		return 0, fmt.Errorf("%w: restore %s: %d records of stream id %d that the manifest does not list", ErrChain, last.ID, g.Count, id)
	}
	if l != nil {
		if id, err = storage.Reincarnate(db, *l); err != nil {
			return 0, err
		}
	}
	return id, db.Sync()
}

// inventory lists the records in db by stream id.
func inventory(db *badger.DB, streams []StreamInfo) (map[uint8]StreamInfo, error) {
	runs := map[uint8][]Range{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: storage.RecordPrefix()})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				id, first, last, ok := storage.ParseRecordEntry(item.Key(), v)
				if !ok {
					return fmt.Errorf("bad record key %x or its value of %d bytes", item.Key(), len(v))
				}
				runs[id] = append(runs[id], Range{First: first, Last: last})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[uint8]StreamInfo{}
	for id, r := range runs {
		rs := union(nil, r)
		out[id] = StreamInfo{ID: id, Count: count(rs), Ranges: rs}
	}
	for _, s := range streams {
		if _, ok := out[s.ID]; !ok && s.Count == 0 {
			out[s.ID] = StreamInfo{ID: s.ID, Ranges: []Range{}}
		}
	}
	return out, nil
}

// install renames tmp to dataDir, moving an existing dataDir aside.
func install(tmp, dataDir, id string) error {
	if _, err := os.Stat(dataDir); err == nil {
		ents, err := os.ReadDir(dataDir)
		if err != nil {
			return err
		}
		if len(ents) == 0 {
			if err := os.Remove(dataDir); err != nil {
				return err
			}
		} else if err := os.Rename(dataDir, dataDir+".before-restore-"+id); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dataDir))
}
