package sink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
)

func (s *Sink) recover() error {
	vehicles, err := subdirs(s.root, batch.ValidName)
	if err != nil {
		return fmt.Errorf("sink: recover: %w", err)
	}
	for _, v := range vehicles {
		stores, err := subdirs(filepath.Join(s.root, v), isStoreDir)
		if err != nil {
			return fmt.Errorf("sink: recover: %w", err)
		}
		for _, sd := range stores {
			id, _ := parseStoreDir(sd)
			if err := s.recoverStore(v, id); err != nil {
				return err
			}
			streams, err := subdirs(filepath.Join(s.root, v, sd), batch.ValidName)
			if err != nil {
				return fmt.Errorf("sink: recover: %w", err)
			}
			for _, st := range streams {
				if err := s.recoverStream(key{v, id, st}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *Sink) recoverStream(k key) error {
	dir := s.dir(k)
	files, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sink: recover: %w", err)
	}
	st := s.stream(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.made = true
	for _, f := range files {
		path := filepath.Join(dir, f.Name())
		switch {
		case strings.HasPrefix(f.Name(), ".tmp-"):
			// A write or a compaction that did not finish: never acked,
			// or still in the files it was compacting.
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sink: recover: remove %s: %w", path, err)
			}
		case f.Name() == lineageName:
			s.recoverLineage(k, path)
		case isSegmentName(f.Name()):
			if err := s.recoverSegment(k, st, path); err != nil {
				return err
			}
		default:
			r, ok := parseFileName(f.Name())
			if !ok {
				continue
			}
			_, recs, err := s.readOneBatch(k, path, r)
			if errors.Is(err, errCorrupt) {
				if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
					return fmt.Errorf("sink: recover: %s does not decode (%v), and moving it aside failed: %w", path, err, rerr)
				}
				s.addCorrupt(fmt.Sprintf("%s: %v", path, err))
				continue
			}
			if err != nil {
				return fmt.Errorf("sink: recover: %w", err)
			}
			st.stored = st.stored.add(r)
			st.noteGaps(k.stream, recs)
			st.files++
		}
	}
	return nil
}

// errCorrupt marks a file whose content is not what its name and place
// say.
var errCorrupt = errors.New("corrupt")

// readOneBatch reads an earlier version's one-batch file, checking it
// against its name and directory; it returns the file and its records.
func (s *Sink) readOneBatch(k key, path string, r Range) ([]byte, []batch.Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	recs, err := s.decodeFor(k, r, b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return b, recs, nil
}

// decodeFor decodes a stored batch, which must hold k's records r.
func (s *Sink) decodeFor(k key, r Range, b []byte) ([]batch.Record, error) {
	h, recs, err := batch.DecodeLimit(b, s.maxBody)
	if err == nil && (h.Vehicle != k.vehicle || h.Store != k.store || h.Stream != k.stream || h.FirstSeq != r.First || h.LastSeq != r.Last) {
		err = fmt.Errorf("holds %s/%s/%s %d-%d", h.Vehicle, storeDir(h.Store), h.Stream, h.FirstSeq, h.LastSeq)
	}
	return recs, err
}

// recoverSegment notes the frames of a segment: their ranges, and the
// gap records of those that hold any (st.mu held).
func (s *Sink) recoverSegment(k key, st *stream, path string) error {
	frames := 0
	end, err := scanSegment(path, func(fr frame) error {
		if fr.flags&flagGaps != 0 {
			recs, err := s.decodeFor(k, fr.r, fr.batch)
			if err != nil {
				s.addCorrupt(fmt.Sprintf("%s: frame at byte %d: %v; skipped", path, fr.off, err))
				return nil
			}
			st.noteGaps(k.stream, recs)
		}
		st.stored = st.stored.add(fr.r)
		frames++
		return nil
	})
	if err != nil {
		return fmt.Errorf("sink: recover: %s: %w", path, err)
	}
	if end.damage != nil {
		s.addCorrupt(fmt.Sprintf("%s: at byte %d: %v; the %d bytes from there are not read", path, end.end, end.damage, end.size-end.end))
	}
	if frames > 0 {
		st.files++
	}
	return nil
}

func (s *Sink) addCorrupt(what string) {
	s.mu.Lock()
	s.corrupt = append(s.corrupt, what)
	s.mu.Unlock()
}

// noteGaps adds the gap records among recs to the state.
func (st *stream) noteGaps(name string, recs []batch.Record) {
	for _, rec := range recs {
		if rec.Kind != record.KindGap {
			continue
		}
		sr := rec.Storage(name)
		g, err := sr.Gap()
		if err != nil {
			st.bad++
			continue
		}
		st.gaps[rec.Seq] = RecordedGap{Seq: rec.Seq, Boot: rec.Boot, Wall: rec.Wall, Reason: g.Reason, First: g.First, Last: g.Last, Count: g.Count}
	}
}

func hasGaps(recs []batch.Record) bool {
	return slices.ContainsFunc(recs, func(r batch.Record) bool { return r.Kind == record.KindGap })
}
