package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// keyLineage holds the lineage of a store restored from a checkpoint
// (Reincarnate), as JSON.
var keyLineage = []byte("m/lineage")

// Lineage says where a store restored from a checkpoint came from. The
// restored store is a new incarnation: a new store id, its sequence
// numbers continuing the parent's. Its records up to ParentLast of their
// stream are the parent's (the dead unit may have uploaded them already:
// they go to the cloud under Parent's id); later ones are its own.
type Lineage struct {
	// Parent is the store id of the checkpoint restored (the dead unit's
	// store).
	Parent uint64
	// Checkpoint is the id of the checkpoint restored: the last of the
	// chain.
	Checkpoint string
	// Vehicle is the vehicle the checkpoint belongs to.
	Vehicle string
	// RestoredAt is the wall time of the restore.
	RestoredAt time.Time
	// ParentLast is, per stream name, the highest sequence number the
	// checkpoint holds (the manifest's StreamInfo.Last; 0 for a stream
	// it held no record of). The restored stream's last sequence number
	// is set to it: the store appends from ParentLast + 1.
	ParentLast map[string]uint64
}

type lineageJSON struct {
	Parent     string            `json:"parent"`
	Checkpoint string            `json:"checkpoint"`
	Vehicle    string            `json:"vehicle"`
	RestoredAt time.Time         `json:"restored_at"`
	ParentLast map[string]uint64 `json:"parent_last"`
}

func (l Lineage) encode() ([]byte, error) {
	return json.Marshal(lineageJSON{Parent: fmt.Sprintf("%016x", l.Parent), Checkpoint: l.Checkpoint,
		Vehicle: l.Vehicle, RestoredAt: l.RestoredAt.UTC(), ParentLast: l.ParentLast})
}

func decodeLineage(b []byte) (Lineage, error) {
	var j lineageJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Lineage{}, err
	}
	parent, err := strconv.ParseUint(j.Parent, 16, 64)
	if err != nil || len(j.Parent) != 16 || parent == 0 {
		return Lineage{}, fmt.Errorf("parent store %q: want 16 hex digits, not zero", j.Parent)
	}
	if j.Checkpoint == "" {
		return Lineage{}, errors.New("no checkpoint id")
	}
	return Lineage{Parent: parent, Checkpoint: j.Checkpoint, Vehicle: j.Vehicle, RestoredAt: j.RestoredAt, ParentLast: j.ParentLast}, nil
}

// Lineage returns the store's lineage, and false for a store that was
// never restored from a checkpoint.
func (s *Store) Lineage() (Lineage, bool) {
	if s.lineage == nil {
		return Lineage{}, false
	}
	l := *s.lineage
	l.ParentLast = make(map[string]uint64, len(s.lineage.ParentLast))
	for k, v := range s.lineage.ParentLast {
		l.ParentLast[k] = v
	}
	return l, true
}

// loadLineage reads m/lineage, if any, at Open.
func (s *Store) loadLineage(db *badger.DB) error {
	var raw []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyLineage)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		raw, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return unopenable("read %s: %w", keyLineage, err)
	}
	if raw == nil {
		return nil
	}
	l, err := decodeLineage(raw)
	if err != nil {
		return unopenable("%s: %w", keyLineage, err)
	}
	s.lineage = &l
	return nil
}

// Reincarnate makes the store in db, a restore of a checkpoint of the
// store l.Parent not yet opened, a new incarnation: it gives it a new
// random store id (other than the parent's), sets each stream's last
// sequence number to l.ParentLast (the records the checkpoint holds: its
// backup is not one snapshot, so the restored m/last may run ahead of
// them) and its cursor to at most that, and records l under m/lineage,
// in one transaction. It returns the new store id. storage/checkpoint
// calls it on the temporary directory before renaming it into place, so
// that a crash leaves the old state or the whole restored one.
//
// It refuses a db that is not a store of this format, whose store id is
// not l.Parent, or whose streams do not match l.ParentLast's names.
func Reincarnate(db *badger.DB, l Lineage) (uint64, error) {
	if l.Parent == 0 || l.Checkpoint == "" {
		return 0, fmt.Errorf("storage: reincarnate: lineage without a parent store or checkpoint (%016x, %q)", l.Parent, l.Checkpoint)
	}
	val, err := l.encode()
	if err != nil {
		return 0, fmt.Errorf("storage: reincarnate: %w", err)
	}
	var id uint64
	for id == 0 || id == l.Parent {
		if id, err = randomID(); err != nil {
			return 0, fmt.Errorf("storage: reincarnate: store id: %w", err)
		}
	}
	err = db.Update(func(txn *badger.Txn) error {
		var format, old uint64
		if err := getU64Key(txn, keyFormat, &format); err != nil {
			return err
		}
		if format != formatVersion {
			return fmt.Errorf("storage format %d, this build writes %d", format, formatVersion)
		}
		if err := getU64Key(txn, keyID, &old); err != nil {
			return err
		}
		if old != l.Parent {
			return fmt.Errorf("the store id is %016x, the lineage's parent %016x", old, l.Parent)
		}
		defs, err := streamIDs(txn)
		if err != nil {
			return err
		}
		for name := range l.ParentLast {
			if _, ok := defs[name]; !ok {
				return fmt.Errorf("stream %s of the lineage is not in the store", name)
			}
		}
		for name, sid := range defs {
			last := l.ParentLast[name]
			var cursor uint64
			if err := getU64Key(txn, idKey(prefixCursor, sid), &cursor); err != nil {
				return err
			}
			if err := txn.Set(idKey(prefixLast, sid), u64(last)); err != nil {
				return err
			}
			if err := txn.Set(idKey(prefixCursor, sid), u64(min(cursor, last))); err != nil {
				return err
			}
		}
		if err := txn.Set(keyID, u64(id)); err != nil {
			return err
		}
		return txn.Set(keyLineage, val)
	})
	if err != nil {
		return 0, fmt.Errorf("storage: reincarnate the restore of checkpoint %s: %w", l.Checkpoint, err)
	}
	return id, nil
}

// streamIDs reads the stream definitions: name to key id.
func streamIDs(txn *badger.Txn) (map[string]uint8, error) {
	defs := map[string]uint8{}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixStreamDef, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		name := string(it.Item().Key()[len(prefixStreamDef):])
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		if len(v) != 5 || v[0] == 0 || binary.BigEndian.Uint32(v[1:]) == 0 {
			return nil, fmt.Errorf("stream definition %q: bad value %x", name, v)
		}
		defs[name] = v[0]
	}
	return defs, nil
}
