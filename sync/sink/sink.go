// Package sink is the cloud side's idempotent telemetry store: the
// ingester hands it every batch it receives, and it writes the records it
// has not seen into a directory tree, answers with the ack to publish,
// and reports what is stored, what the vehicles said they lost, and what
// is missing without explanation.
//
// # Layout
//
//	<root>/<vehicle>/<store>/<stream>/<first>-<last>.batch
//
// store is the uploading store's incarnation id (batch.Header.Store) as 16
// lowercase hex digits. first and last are 20-digit zero-padded sequence
// numbers, so names sort in seq order. Each file is a batch in the wire
// format of package batch (checksummed) holding exactly the records first
// to last. A batch whose records are all new is stored as it was
// received, compressed however the uploader compressed it, once
// DecodeLimit has checked it (checksum, contiguity, count, kinds, body
// limit): its header names its range, vehicle, store and stream, so it
// matches its name. Only the new sub-ranges of an overlapping batch are
// re-encoded (flate). A file is written to a temporary name in the same
// directory, synced, renamed into place, and the directory synced, before
// the ack is returned: a file under its final name is always complete.
// Names are fixed by content, so two replicas (in one process or several)
// storing the same range write files of the same name and records, and a
// rename over one is harmless. Replicas that do not share state may store
// overlapping ranges in different files; recovery and reading
// de-duplicate by sequence number.
//
// Records are de-duplicated on (vehicle, store, stream, seq). The edge
// store's sequence numbers continue across its boots, so the boot (kept
// in every record) is not part of the key; but they restart at 1 when the
// vehicle's store is moved aside as unreadable and started afresh, and
// the fresh store has a new incarnation id, so its records are new ones,
// not duplicates of the old store's. Each incarnation of a vehicle's
// stream has its own ranges, high-water mark and report.
//
// Directories under a vehicle that are not a store id (16 lowercase hex
// digits, not all zero) are ignored, as are names that are not valid
// vehicle or stream names.
//
// Open recovers the state by decoding every file (O(stored data); an
// index is future work). A file that does not decode is renamed to
// <name>.corrupt and listed in the report; its records count as missing.
package sink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
)

// Sink stores batches. It is safe for concurrent use.
type Sink struct {
	root    string
	maxBody int

	mu      gosync.Mutex
	streams map[key]*stream
	corrupt []string
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
	files  int
	bad    int // gap records that did not decode
	// made: mkdirs has run for the stream in this Sink, so its
	// directories exist (a sink never removes one; Ingest makes them
	// again if they went away).
	made bool
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
}

// Open opens (creating it if needed) the tree at root and recovers its
// state.
func Open(root string, opts Options) (*Sink, error) {
	if opts.MaxBody <= 0 {
		opts.MaxBody = batch.DefaultMaxBody
	}
	s := &Sink{root: filepath.Clean(root), maxBody: opts.MaxBody, streams: map[key]*stream{}}
	if err := os.MkdirAll(s.root, 0o750); err != nil {
		return nil, fmt.Errorf("sink: create %s: %w", s.root, err)
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	return s, nil
}

const suffix = ".batch"

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
	for _, f := range files {
		path := filepath.Join(dir, f.Name())
		if strings.HasPrefix(f.Name(), ".tmp-") {
			// A write that did not finish; its batch was never acked.
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("sink: recover: remove %s: %w", path, err)
			}
			continue
		}
		r, ok := parseFileName(f.Name())
		if !ok {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("sink: recover: %w", err)
		}
		h, recs, err := batch.DecodeLimit(b, s.maxBody)
		if err == nil && (h.Vehicle != k.vehicle || h.Store != k.store || h.Stream != k.stream || h.FirstSeq != r.First || h.LastSeq != r.Last) {
			err = fmt.Errorf("holds %s/%s/%s %d-%d", h.Vehicle, storeDir(h.Store), h.Stream, h.FirstSeq, h.LastSeq)
		}
		if err != nil {
			if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
				return fmt.Errorf("sink: recover: %s does not decode (%v), and moving it aside failed: %w", path, err, rerr)
			}
			s.corrupt = append(s.corrupt, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		st.note(k.stream, r, recs)
	}
	return nil
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

// note adds a stored file's range and gap records to the state.
func (st *stream) note(name string, r Range, recs []batch.Record) {
	st.stored = st.stored.add(r)
	st.files++
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
// Any other error (the disk) comes with a zero Ack: publish nothing, and
// the edge will resend. Records written before such an error stay
// stored.
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
	dir := s.dir(k)
	if !st.made {
		if err := s.mkdirs(k); err != nil {
			return batch.Ack{}, err
		}
		st.made = true
	}
	for _, r := range fresh {
		part := recs[r.First-h.FirstSeq : r.Last-h.FirstSeq+1]
		var b []byte
		if r.First == h.FirstSeq && r.Last == h.LastSeq {
			// All of it is new: the batch as received is the file,
			// already checked by DecodeLimit (checksum, contiguity,
			// count, kinds, the body limit) and named by its own
			// header's range, vehicle, store and stream.
			b = raw
		} else {
			b, err = batch.Encode(batch.Header{Vehicle: h.Vehicle, Store: h.Store, Stream: h.Stream, Boot: h.Boot, Compression: batch.Flate}, part)
			if err != nil {
				return batch.Ack{}, fmt.Errorf("sink: encode %s/%s/%s %v: %w", h.Vehicle, storeDir(h.Store), h.Stream, r, err)
			}
		}
		err = writeAtomic(dir, fileName(r), b)
		if errors.Is(err, os.ErrNotExist) {
			// The directories went away behind the sink's back.
			if err = s.mkdirs(k); err == nil {
				err = writeAtomic(dir, fileName(r), b)
			}
		}
		if err != nil {
			return batch.Ack{}, err
		}
		st.note(h.Stream, r, part)
	}
	ack.Status = batch.StatusStored
	return ack, nil
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

// writeHook lets a test fail a write between the temporary file and the
// rename.
var writeHook func(tmp string) error

func writeAtomic(dir, name string, b []byte) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("sink: write %s: %w", filepath.Join(dir, name), err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("sink: write %s: %w", filepath.Join(dir, name), err)
		}
	}()
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && writeHook != nil {
		err = writeHook(tmp)
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
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
// limit), de-duplicated across overlapping files. It reads the files; it
// is for tools and tests, not a hot path.
func (s *Sink) ReadStore(vehicle string, store uint64, name string, after uint64, max int) ([]batch.Record, error) {
	if !batch.ValidName(vehicle) || !batch.ValidName(name) || store == 0 {
		return nil, fmt.Errorf("sink: read %s/%s/%s: invalid name", vehicle, storeDir(store), name)
	}
	dir := s.dir(key{vehicle, store, name})
	files, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sink: read: %w", err)
	}
	var out []batch.Record
	for _, f := range files {
		r, ok := parseFileName(f.Name())
		if !ok || r.Last <= after {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			return nil, fmt.Errorf("sink: read: %w", err)
		}
		_, recs, err := batch.DecodeLimit(b, s.maxBody)
		if err != nil {
			return nil, fmt.Errorf("sink: read %s: %w", filepath.Join(dir, f.Name()), err)
		}
		for _, rec := range recs {
			if rec.Seq > after && (len(out) == 0 || rec.Seq > out[len(out)-1].Seq) {
				out = append(out, rec)
			}
		}
		if max > 0 && len(out) >= max {
			return out[:max], nil
		}
	}
	return out, nil
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
