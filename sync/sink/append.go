package sink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// errSegmentGone: the segment is not as this Sink left it (removed
// behind its back): the frames go to a new one.
var errSegmentGone = errors.New("segment gone")

// errCrashed is what an operation a test's crash hook stopped returns.
var errCrashed = errors.New("sink: crashed (test)")

// crash lets a test cut an operation short as a crash would, leaving the
// files as they are then: at step (crashAppend, crashCompactWrite,
// crashCompactRenamed, crashCompactRemove) it returns how many bytes of
// the write about to be made reach the file (or how many files are
// removed), and whether the operation stops there. nil in production.
var crash func(step string, n int) (keep int, stop bool)

const (
	crashAppend         = "append"          // frames to a segment
	crashCompactWrite   = "compact-write"   // the new segment, to its temporary name
	crashCompactRenamed = "compact-renamed" // renamed into place; no file removed yet
	crashCompactRemove  = "compact-remove"  // removing the files compacted
)

// writeHook lets a test fail a write before it is made.
var writeHook func(path string) error

// syncFile syncs a file the sink wrote; a test that counts files, not
// crashes, may make it do nothing.
var syncFile = (*os.File).Sync

// write writes b to f, through the test's crash hook.
func write(f *os.File, step string, b []byte) error {
	if crash != nil {
		if keep, stop := crash(step, len(b)); stop {
			f.Write(b[:max(0, min(keep, len(b)))]) //nolint:errcheck // a crash: whatever got there
			return errCrashed
		}
	}
	_, err := f.Write(b)
	return err
}

// append appends frames to k's segment and syncs it (st.mu held), rolling
// the segment first when it is old or full.
func (s *Sink) append(k key, st *stream, frames []byte) error {
	now := s.now()
	if sg := st.seg; sg != nil && (now.Sub(sg.created) >= s.segAge || sg.size+int64(len(frames)) > s.segSize) {
		st.seg = nil
	}
	if st.seg != nil {
		err := s.appendTo(st.seg, frames)
		if err == nil {
			return nil
		}
		// The segment is abandoned: after a failed write its end is not
		// to be trusted, and a gone one is gone.
		st.seg = nil
		if !errors.Is(err, errSegmentGone) {
			return err
		}
	}
	sg, err := s.newSegment(k, st, now, frames)
	if err != nil {
		return err
	}
	st.seg = sg
	st.files++
	return nil
}

// appendTo appends frames to the segment sg and syncs it. A failed write
// is taken back.
func (s *Sink) appendTo(sg *segment, frames []byte) (err error) {
	f, err := os.OpenFile(sg.path, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		return errSegmentGone
	}
	if err != nil {
		return fmt.Errorf("sink: append to %s: %w", sg.path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("sink: append to %s: %w", sg.path, cerr)
		}
	}()
	if fi, err := f.Stat(); err != nil || fi.Size() != sg.size {
		return errSegmentGone
	}
	if writeHook != nil {
		if err := writeHook(sg.path); err != nil {
			return fmt.Errorf("sink: append to %s: %w", sg.path, err)
		}
	}
	err = write(f, crashAppend, frames)
	if errors.Is(err, errCrashed) {
		return err
	}
	if err == nil {
		err = syncFile(f)
	}
	if err != nil {
		if terr := f.Truncate(sg.size); terr == nil {
			f.Sync() //nolint:errcheck // the segment is abandoned either way
		}
		return fmt.Errorf("sink: append to %s: %w", sg.path, err)
	}
	sg.size += int64(len(frames))
	return nil
}

// newSegment starts a segment of k's holding frames, synced, its
// directory synced (st.mu held).
func (s *Sink) newSegment(k key, st *stream, now time.Time, frames []byte) (*segment, error) {
	dir := s.dir(k)
	if !st.made {
		if err := s.mkdirs(k); err != nil {
			return nil, err
		}
		st.made = true
	}
	sg := &segment{path: filepath.Join(dir, segmentName(now, s.writer, s.nseg.Add(1))), created: now}
	f, err := os.OpenFile(sg.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, os.ErrNotExist) {
		// The directories went away behind the sink's back.
		if err = s.mkdirs(k); err == nil {
			f, err = os.OpenFile(sg.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sink: new segment %s: %w", sg.path, err)
	}
	b := append([]byte(segMagic), frames...)
	if writeHook != nil {
		err = writeHook(sg.path)
	}
	if err == nil {
		err = write(f, crashAppend, b)
		if errors.Is(err, errCrashed) {
			f.Close()
			return nil, err
		}
	}
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(sg.path)
		return nil, fmt.Errorf("sink: new segment %s: %w", sg.path, err)
	}
	sg.size = int64(len(b))
	return sg, nil
}
