// Package sink is the cloud side's idempotent telemetry store: the
// ingester hands it every batch it receives, and it writes the records it
// has not seen into a directory tree, answers with the ack to publish,
// and reports what is stored, what the vehicles said they lost, and what
// is missing without explanation.
//
// # Layout
//
//	<root>/<vehicle>/<store>/<stream>/<started>-<writer>-<n>.seg
//	<root>/<vehicle>/<store>/<stream>/<first>-<last>.batch    (earlier versions)
//
// store is the uploading store's incarnation id (batch.Header.Store) as 16
// lowercase hex digits. The records of one incarnation of a vehicle's
// stream go into segment files: each batch is appended to the stream's
// current segment as one frame (a length, the batch's range, flags and a
// CRC-32C; segment.go has the layout) and the segment synced before the
// ack is returned. A segment is rolled — the next batch starts a new one
// — once it is Options.SegmentAge old (1 h) or would pass
// Options.SegmentBytes (64 MiB), so a stream that keeps sending makes a
// file an hour, whatever its batches' sizes: one vehicle's fleet-day at
// the demo's rates is 4 streams × 24 segments (TestFleetDayFiles). Each
// Sink (each ingester replica, each process) writes segments of its own,
// named after the time it started them, its writer id (random, drawn by
// Open) and a count, and never appends to another's or, after a
// restart, to its own earlier ones: no two writers ever share a file,
// and after a crash a segment ends with whole frames, or with part of
// the last one, which was never acknowledged and which readers skip.
// A write that fails is taken back (the file truncated to where it was)
// and the segment abandoned.
//
// A batch whose records are all new is framed as it was received,
// compressed however the uploader compressed it, once DecodeLimit has
// checked it (checksum, contiguity, count, kinds, body limit). Only the
// new sub-ranges of an overlapping batch are re-encoded (flate).
//
// Earlier versions wrote one file per stored range,
// <first>-<last>.batch (20-digit zero-padded sequence numbers), holding
// one batch. They are read as before, and Compact merges them into
// segments: it writes a new segment to a temporary name, syncs it,
// renames it into place and syncs the directory, and only then removes
// the one-batch files; a crash at any point loses nothing, and the
// records it left in both places are counted once and, at the next
// Compact, kept only in the segment.
//
// Records are de-duplicated on (vehicle, store, stream, seq). The edge
// store's sequence numbers continue across its boots, so the boot (kept
// in every record) is not part of the key; but they restart at 1 when the
// vehicle's store is moved aside as unreadable and started afresh, and
// the fresh store has a new incarnation id, so its records are new ones,
// not duplicates of the old store's. Each incarnation of a vehicle's
// stream has its own ranges, high-water mark and report. Replicas that
// do not share state may each store a range that reaches them both (a
// resend after a lost ack that the broker gives to the other replica):
// recovery and reading de-duplicate by sequence number.
//
// Directories under a vehicle that are not a store id (16 lowercase hex
// digits, not all zero) are ignored, as are names that are not valid
// vehicle or stream names.
//
// Open recovers the state by reading every file: every frame's header
// and checksum (O(stored bytes), without inflating anything but the
// batches that hold gap records) and every one-batch file. A one-batch
// file that does not decode is renamed to <name>.corrupt; a segment with
// a damaged frame is left as it is and read up to that frame. Both are
// listed in the report, and the records they lose count as missing.
package sink

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
)

// Sink stores batches. It is safe for concurrent use.
type Sink struct {
	root    string
	maxBody int
	segSize int64
	segAge  time.Duration
	now     func() time.Time
	writer  string        // this Sink's id in its segments' names
	nseg    atomic.Uint64 // segments named so far

	mu      gosync.Mutex
	streams map[key]*stream
	corrupt []string

	compactMu gosync.Mutex // one Compact at a time
}

// key names one incarnation of one vehicle's stream.
type key struct {
	vehicle string
	store   uint64
	stream  string
}

type stream struct {
	mu     gosync.Mutex
	stored ranges
	gaps   map[uint64]RecordedGap // by the gap record's seq
	files  int                    // files holding its records
	bad    int                    // gap records that did not decode
	// made: mkdirs has run for the stream in this Sink, so its
	// directories exist (a sink never removes one; Ingest makes them
	// again if they went away).
	made bool
	// seg is the segment this Sink appends the stream's batches to; nil
	// until the first, and after a roll or a failed write.
	seg *segment
}

// segment is the segment a Sink appends a stream's batches to.
type segment struct {
	path    string
	size    int64 // what this Sink wrote: the file's size
	created time.Time
}

// RecordedGap is a gap record a vehicle sent: records it lost, and why.
type RecordedGap struct {
	Seq    uint64 // the gap record's own sequence number
	Boot   uint32
	Wall   time.Time
	Reason storage.GapReason
	// First and Last bound an eviction's hole; 0 for a drop, whose
	// records never had sequence numbers.
	First, Last uint64
	Count       uint64
}

// Options tune a Sink.
type Options struct {
	// MaxBody is the decode limit for a batch body; 0 means
	// batch.DefaultMaxBody. It must be at least the uploaders' MaxBody.
	MaxBody int
	// SegmentBytes rolls a segment: a batch that would take it past
	// this size starts a new one (a batch larger than it gets a segment
	// of its own). 0 means 64 MiB.
	SegmentBytes int64
	// SegmentAge rolls a segment: the first batch once it is this old
	// starts a new one. 0 means 1 h.
	SegmentAge time.Duration
	// Now is the clock of the segments' ages and names; nil means
	// time.Now.
	Now func() time.Time
}

// Default segment limits.
const (
	DefaultSegmentBytes = 64 << 20
	DefaultSegmentAge   = time.Hour
)

// Open opens (creating it if needed) the tree at root and recovers its
// state.
func Open(root string, opts Options) (*Sink, error) {
	if opts.MaxBody <= 0 {
		opts.MaxBody = batch.DefaultMaxBody
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.SegmentAge <= 0 {
		opts.SegmentAge = DefaultSegmentAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("sink: writer id: %w", err)
	}
	s := &Sink{root: filepath.Clean(root), maxBody: opts.MaxBody, segSize: opts.SegmentBytes, segAge: opts.SegmentAge,
		now: opts.Now, writer: hex.EncodeToString(id[:]), streams: map[key]*stream{}}
	if err := os.MkdirAll(s.root, 0o750); err != nil {
		return nil, fmt.Errorf("sink: create %s: %w", s.root, err)
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	return s, nil
}

const suffix = ".batch"

// fileName is the name of an earlier version's one-batch file.
func fileName(r Range) string { return fmt.Sprintf("%020d-%020d%s", r.First, r.Last, suffix) }

func parseFileName(name string) (Range, bool) {
	var r Range
	if !strings.HasSuffix(name, suffix) || len(name) != 41+len(suffix) {
		return r, false
	}
	if _, err := fmt.Sscanf(name, "%020d-%020d"+suffix, &r.First, &r.Last); err != nil || r.First == 0 || r.Last < r.First {
		return r, false
	}
	return r, true
}

// storeDir is the directory name of a store id: 16 lowercase hex digits.
func storeDir(id uint64) string { return fmt.Sprintf("%016x", id) }

// parseStoreDir is the inverse of storeDir; it refuses any other spelling
// and the id 0.
func parseStoreDir(name string) (uint64, bool) {
	if len(name) != 16 {
		return 0, false
	}
	var id uint64
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= '0' && c <= '9':
			id = id<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			id = id<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return id, id != 0
}

// subdirs lists the directories in dir whose names pass ok.
func subdirs(dir string, ok func(string) bool) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		if e.IsDir() && ok(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func isStoreDir(name string) bool { _, ok := parseStoreDir(name); return ok }

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

// dir is the directory of k's files.
func (s *Sink) dir(k key) string {
	return filepath.Join(s.root, k.vehicle, storeDir(k.store), k.stream)
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
	for _, f := range files {
		path := filepath.Join(dir, f.Name())
		switch {
		case strings.HasPrefix(f.Name(), ".tmp-"):
			// A write or a compaction that did not finish: never acked,
			// or still in the files it was compacting.
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sink: recover: remove %s: %w", path, err)
			}
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

// stream returns the state of k, creating it.
func (s *Sink) stream(k key) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil {
		st = &stream{gaps: map[uint64]RecordedGap{}}
		s.streams[k] = st
	}
	return st
}

// noteGaps adds the gap records among recs to the state.
func (st *stream) noteGaps(name string, recs []batch.Record) {
	for _, rec := range recs {
		if rec.Kind != storage.KindGap {
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
	return slices.ContainsFunc(recs, func(r batch.Record) bool { return r.Kind == storage.KindGap })
}

// ErrRejected is wrapped by the error Ingest returns with a rejected ack.
var ErrRejected = errors.New("sink: batch rejected")

// Ingest stores the new records of a batch received on vehicle's topic
// and returns the ack to publish, which carries the batch's store id:
//
//   - stored: some records were new, and are durable;
//   - duplicate: all were stored before; nothing was written;
//   - rejected: the batch does not decode, or names another vehicle; the
//     error wraps ErrRejected and the decode error.
//
// Any other error (the disk) comes with a zero Ack and stores nothing:
// publish nothing, and the edge will resend.
func (s *Sink) Ingest(vehicle string, raw []byte) (batch.Ack, error) {
	h, recs, err := batch.DecodeLimit(raw, s.maxBody)
	if err == nil && h.Vehicle != vehicle {
		err = fmt.Errorf("batch of vehicle %q arrived on the topic of %q", h.Vehicle, vehicle)
	}
	if err != nil {
		ack := batch.Ack{Vehicle: h.Vehicle, Store: h.Store, Boot: h.Boot, Stream: h.Stream, FirstSeq: h.FirstSeq, LastSeq: h.LastSeq,
			Status: batch.StatusRejected, Reason: err.Error()}
		return ack, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	ack := batch.Ack{Vehicle: h.Vehicle, Store: h.Store, Boot: h.Boot, Stream: h.Stream, FirstSeq: h.FirstSeq, LastSeq: h.LastSeq}
	k := key{h.Vehicle, h.Store, h.Stream}
	st := s.stream(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	fresh := st.stored.missing(Range{h.FirstSeq, h.LastSeq})
	if len(fresh) == 0 {
		ack.Status = batch.StatusDuplicate
		return ack, nil
	}
	var frames []byte
	for _, r := range fresh {
		part := recs[r.First-h.FirstSeq : r.Last-h.FirstSeq+1]
		b := raw
		if r.First != h.FirstSeq || r.Last != h.LastSeq {
			b, err = batch.Encode(batch.Header{Vehicle: h.Vehicle, Store: h.Store, Stream: h.Stream, Boot: h.Boot, Compression: batch.Flate}, part)
			if err != nil {
				return batch.Ack{}, fmt.Errorf("sink: encode %s/%s/%s %v: %w", h.Vehicle, storeDir(h.Store), h.Stream, r, err)
			}
		}
		var flags uint32
		if hasGaps(part) {
			flags |= flagGaps
		}
		frames = appendFrame(frames, r, flags, b)
	}
	if err := s.append(k, st, frames); err != nil {
		return batch.Ack{}, err
	}
	for _, r := range fresh {
		st.stored = st.stored.add(r)
		st.noteGaps(h.Stream, recs[r.First-h.FirstSeq:r.Last-h.FirstSeq+1])
	}
	ack.Status = batch.StatusStored
	return ack, nil
}

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

// mkdirs creates <root>/<vehicle>/<store>/<stream>, syncing each parent
// whose entries changed so the new directories survive a crash.
func (s *Sink) mkdirs(k key) error {
	parent := s.root
	for _, d := range []string{k.vehicle, storeDir(k.store), k.stream} {
		path := filepath.Join(parent, d)
		err := os.Mkdir(path, 0o750)
		if err == nil {
			err = syncDir(parent)
		} else if errors.Is(err, os.ErrExist) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("sink: create %s: %w", path, err)
		}
		parent = path
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

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
