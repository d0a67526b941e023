package sink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigil-av/vigil/sync/batch"
)

// ErrSeveralStores is returned by ReadStream for a stream that more than
// one incarnation of the vehicle's store has sent.
var ErrSeveralStores = errors.New("sink: the stream has records of several store incarnations")

// ReadStream is ReadStore for the vehicle's only store that has sent
// stream name: it keeps the meaning it had before stores had ids, for a
// vehicle whose store was never started afresh. With no such store it
// returns nothing; with several it returns an error wrapping
// ErrSeveralStores (their sequence numbers overlap; use ReadStore).
func (s *Sink) ReadStream(vehicle, name string, after uint64, max int) ([]batch.Record, error) {
	if !batch.ValidName(vehicle) || !batch.ValidName(name) {
		return nil, fmt.Errorf("sink: read %s/%s: invalid name", vehicle, name)
	}
	stores, err := subdirs(filepath.Join(s.root, vehicle), func(d string) bool {
		if !isStoreDir(d) {
			return false
		}
		fi, err := os.Stat(filepath.Join(s.root, vehicle, d, name))
		return err == nil && fi.IsDir()
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sink: read: %w", err)
	}
	switch len(stores) {
	case 0:
		return nil, nil
	case 1:
		id, _ := parseStoreDir(stores[0])
		return s.ReadStore(vehicle, id, name, after, max)
	}
	return nil, fmt.Errorf("%w: %s/%s from stores %s", ErrSeveralStores, vehicle, name, strings.Join(stores, ", "))
}

// ReadStore returns the stored records of one incarnation of a vehicle's
// stream after seq after, in seq order, at most max of them (0: no
// limit), de-duplicated across files. It reads the files (skipping the
// frames that end at or before after without inflating them); it is for
// tools and tests, not a hot path.
func (s *Sink) ReadStore(vehicle string, store uint64, name string, after uint64, max int) ([]batch.Record, error) {
	var out []batch.Record
	err := s.each(vehicle, store, name, after, func(recs []batch.Record) error {
		for _, rec := range recs {
			if rec.Seq > after {
				out = append(out, rec)
			}
		}
		return nil
	})
	if err != nil || len(out) == 0 {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b batch.Record) int { return cmpU64(a.Seq, b.Seq) })
	out = slices.CompactFunc(out, func(a, b batch.Record) bool { return a.Seq == b.Seq })
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// Scan calls fn with every record stored for one incarnation of a
// vehicle's stream as it is stored, file by file and frame by frame: a
// record stored twice (by replicas that share nothing, or by a
// compaction a crash cut short) comes twice. It is for checks of the
// sink itself; ReadStore de-duplicates.
func (s *Sink) Scan(vehicle string, store uint64, name string, fn func(batch.Record) error) error {
	return s.each(vehicle, store, name, 0, func(recs []batch.Record) error {
		for _, rec := range recs {
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// each calls fn with the records of each stored batch of k whose range
// ends after after: one-batch files and segments' whole frames, stopping
// in a segment at a torn or damaged frame (Open reports the damage).
func (s *Sink) each(vehicle string, store uint64, name string, after uint64, fn func([]batch.Record) error) error {
	if !batch.ValidName(vehicle) || !batch.ValidName(name) || store == 0 {
		return fmt.Errorf("sink: read %s/%s/%s: invalid name", vehicle, storeDir(store), name)
	}
	k := key{vehicle, store, name}
	dir := s.dir(k)
	files, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sink: read: %w", err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.Name())
		if isSegmentName(f.Name()) {
			_, err := scanSegment(path, func(fr frame) error {
				if fr.r.Last <= after {
					return nil
				}
				recs, err := s.decodeFor(k, fr.r, fr.batch)
				if err != nil {
					return fmt.Errorf("sink: read %s, frame at byte %d: %w", path, fr.off, err)
				}
				return fn(recs)
			})
			if errors.Is(err, os.ErrNotExist) {
				continue // compacted away meanwhile
			}
			if err != nil {
				return fmt.Errorf("sink: read: %w", err)
			}
			continue
		}
		r, ok := parseFileName(f.Name())
		if !ok || r.Last <= after {
			continue
		}
		_, recs, err := s.readOneBatch(k, path, r)
		if errors.Is(err, os.ErrNotExist) {
			continue // compacted away meanwhile
		}
		if err != nil {
			return fmt.Errorf("sink: read %s: %w", path, err)
		}
		if err := fn(recs); err != nil {
			return err
		}
	}
	return nil
}

// keys returns the keys sorted by vehicle, then store id (numerically),
// then stream.
func (s *Sink) keys() []key {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := make([]key, 0, len(s.streams))
	for k := range s.streams {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b key) int {
		if c := strings.Compare(a.vehicle, b.vehicle); c != 0 {
			return c
		}
		if c := cmpU64(a.store, b.store); c != 0 {
			return c
		}
		return strings.Compare(a.stream, b.stream)
	})
	return ks
}
