package sink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vigil-av/vigil/sync/batch"
)

// CompactStats says what Compact did.
type CompactStats struct {
	Streams  int // streams that had one-batch files
	Files    int // one-batch files merged and removed
	Segments int // segments written
	Corrupt  int // one-batch files that did not decode, renamed <name>.corrupt
}

// Compact merges the one-batch files of earlier versions
// (<first>-<last>.batch) into segments, stream by stream, at most
// Options.SegmentBytes a segment. Records a segment of the stream holds
// already are not written again. Each new segment is written to a
// temporary name, synced, renamed into place and the directory synced
// before the files it holds are removed (and the directory synced
// again): a crash at any point loses nothing, and what it leaves in both
// a segment and one-batch files is counted once, read once, and removed
// from the one-batch files by the next Compact. The records, ranges,
// gap records and duplicate detection are the same before and after.
//
// It may run while the Sink ingests (a stream's batches wait while that
// stream is compacted) and while other processes ingest into the tree;
// Compacts of one Sink run one at a time. Compact walks the whole tree,
// so it also finds files an earlier version's replica wrote since Open.
func (s *Sink) Compact() (CompactStats, error) {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	var out CompactStats
	vehicles, err := subdirs(s.root, batch.ValidName)
	if err != nil {
		return out, fmt.Errorf("sink: compact: %w", err)
	}
	for _, v := range vehicles {
		stores, err := subdirs(filepath.Join(s.root, v), isStoreDir)
		if err != nil {
			return out, fmt.Errorf("sink: compact: %w", err)
		}
		for _, sd := range stores {
			id, _ := parseStoreDir(sd)
			streams, err := subdirs(filepath.Join(s.root, v, sd), batch.ValidName)
			if err != nil {
				return out, fmt.Errorf("sink: compact: %w", err)
			}
			for _, name := range streams {
				if err := s.compactStream(key{v, id, name}, &out); err != nil {
					return out, err
				}
			}
		}
	}
	return out, nil
}

// compactStream compacts one stream's one-batch files.
func (s *Sink) compactStream(k key, out *CompactStats) error {
	dir := s.dir(k)
	olds, segs, err := streamFiles(dir)
	if err != nil {
		return err
	}
	if len(olds) == 0 {
		return nil
	}
	out.Streams++
	st := s.stream(k)
	st.mu.Lock()
	defer st.mu.Unlock()

	// What the segments hold: not written again.
	covered, files, err := segmentsHold(segs)
	if err != nil {
		return err
	}

	var (
		frames  []byte
		done    []string       // the files the frames hold, or that held nothing new
		noted   []Range        // the ranges they hold
		gapRecs []batch.Record // their gap records
		kept    = len(olds)    // one-batch files not removed
	)
	flush := func() error {
		if len(frames) > 0 {
			if err := s.writeCompacted(dir, frames); err != nil {
				return err
			}
			out.Segments++
			files++
		}
		removed, err := removeAll(dir, done)
		kept -= removed
		out.Files += removed
		if err != nil {
			return err
		}
		for _, r := range noted {
			st.stored = st.stored.add(r)
		}
		st.noteGaps(k.stream, gapRecs)
		frames, done, noted, gapRecs = nil, nil, nil, nil
		return nil
	}
	defer func() { st.files = files + kept }()
	for _, o := range olds {
		raw, recs, err := s.readOneBatch(k, o.path, o.r)
		switch {
		case errors.Is(err, os.ErrNotExist):
			kept--
			continue
		case errors.Is(err, errCorrupt):
			if rerr := os.Rename(o.path, o.path+".corrupt"); rerr != nil {
				return fmt.Errorf("sink: compact: %s does not decode (%v), and moving it aside failed: %w", o.path, err, rerr)
			}
			s.addCorrupt(fmt.Sprintf("%s: %v", o.path, err))
			out.Corrupt++
			kept--
			continue
		case err != nil:
			return fmt.Errorf("sink: compact: %w", err)
		}
		for _, r := range covered.missing(o.r) {
			part := recs[r.First-o.r.First : r.Last-o.r.First+1]
			b, err := frameBody(k, o.r, raw, r, part)
			if err != nil {
				return fmt.Errorf("sink: compact: %s %v: %w", o.path, r, err)
			}
			var flags uint32
			if hasGaps(part) {
				flags |= flagGaps
				gapRecs = append(gapRecs, part...)
			}
			frames = appendFrame(frames, r, flags, b)
			covered = covered.add(r)
			noted = append(noted, r)
		}
		done = append(done, o.path)
		if int64(len(frames))+int64(len(segMagic)) >= s.segSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// oneBatch is an earlier version's one-batch file.
type oneBatch struct {
	path string
	r    Range
}

// streamFiles lists a stream directory's one-batch files, in name order,
// which is sequence order, and its segments.
func streamFiles(dir string) ([]oneBatch, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("sink: compact: %w", err)
	}
	var olds []oneBatch
	var segs []string
	for _, e := range entries {
		if r, ok := parseFileName(e.Name()); ok {
			olds = append(olds, oneBatch{filepath.Join(dir, e.Name()), r})
		} else if isSegmentName(e.Name()) {
			segs = append(segs, filepath.Join(dir, e.Name()))
		}
	}
	return olds, segs, nil
}

// segmentsHold scans the segments and returns the ranges their frames
// hold and how many segments hold any.
func segmentsHold(segs []string) (ranges, int, error) {
	var covered ranges
	files := 0
	for _, p := range segs {
		frames := 0
		_, err := scanSegment(p, func(fr frame) error {
			covered = covered.add(fr.r)
			frames++
			return nil
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("sink: compact: %s: %w", p, err)
		}
		if frames > 0 {
			files++
		}
	}
	return covered, files, nil
}

// frameBody is the body of the frame that holds range r of the one-batch
// file of range whole: the file as it was received when r is all of it,
// else part, the records no segment holds, encoded afresh (the boot in
// its header is its first record's).
func frameBody(k key, whole Range, raw []byte, r Range, part []batch.Record) ([]byte, error) {
	if r == whole {
		return raw, nil
	}
	return batch.Encode(batch.Header{Vehicle: k.vehicle, Store: k.store, Stream: k.stream, Boot: part[0].Boot, Compression: batch.Flate}, part)
}

// writeCompacted writes frames as a new segment in dir: to a temporary
// name, synced, renamed into place, the directory synced.
func (s *Sink) writeCompacted(dir string, frames []byte) (err error) {
	name := segmentName(s.now(), s.writer, s.nseg.Add(1))
	tmp := filepath.Join(dir, ".tmp-"+name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("sink: compact: %w", err)
	}
	crashed := false
	defer func() {
		if err != nil && !crashed {
			os.Remove(tmp)
		}
	}()
	err = write(f, crashCompactWrite, append([]byte(segMagic), frames...))
	if errors.Is(err, errCrashed) {
		crashed = true
		f.Close()
		return err
	}
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("sink: compact: write %s: %w", filepath.Join(dir, name), err)
	}
	if crash != nil {
		if _, stop := crash(crashCompactRenamed, 0); stop {
			crashed = true
			return errCrashed
		}
	}
	return nil
}

// removeAll removes the files compacted, and syncs dir; it returns how
// many it removed.
func removeAll(dir string, paths []string) (int, error) {
	stop := false
	if crash != nil {
		var keep int
		if keep, stop = crash(crashCompactRemove, len(paths)); stop {
			paths = paths[:max(0, min(keep, len(paths)))]
		}
	}
	n := 0
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("sink: compact: %w", err)
		}
		n++
	}
	if stop {
		return n, errCrashed
	}
	if n > 0 {
		if err := syncDir(dir); err != nil {
			return n, fmt.Errorf("sink: compact: %w", err)
		}
	}
	return n, nil
}
