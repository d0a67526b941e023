package sink

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/storage/record"
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
	ntmp    atomic.Uint64 // temporary files named so far

	mu      gosync.Mutex
	streams map[key]*stream
	stores  map[skey]*storeState
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
	// made: the stream's directories exist: Open found them, or mkdirs
	// has run for the stream in this Sink (a sink never removes one;
	// Ingest makes them again if they went away). A stream not made
	// has had only refused batches, and Report leaves it out.
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
	Reason record.GapReason
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
	// Clock is the clock of the segments' ages and names; nil means the
	// system clock.
	Clock clock.Clock
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
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("sink: writer id: %w", err)
	}
	s := &Sink{root: filepath.Clean(root), maxBody: opts.MaxBody, segSize: opts.SegmentBytes, segAge: opts.SegmentAge,
		now: clock.Or(opts.Clock).Now, writer: hex.EncodeToString(id[:]), streams: map[key]*stream{}, stores: map[skey]*storeState{}}
	if err := os.MkdirAll(s.root, 0o750); err != nil {
		return nil, fmt.Errorf("sink: create %s: %w", s.root, err)
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	return s, nil
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

// ErrRejected is wrapped by the error Ingest returns with a rejected ack.
var ErrRejected = errors.New("sink: batch rejected")

// Ingest stores the new records of a batch received on vehicle's topic
// and returns the ack to publish, which carries the batch's store id:
//
//   - stored: some records were new, and are durable;
//   - duplicate: all were stored before; nothing was written;
//   - rejected: the batch does not decode, names another vehicle, or
//     contradicts its store's lineage (checkLineage); the error wraps
//     ErrRejected and the reason (ErrLineage for the lineage).
//
// The first batch with a lineage of a restored store's stream records
// the stream's lineage (lineage.go) before its records.
//
// Any other error (the disk) comes with a zero Ack and stores nothing:
// publish nothing, and the edge will resend.
func (s *Sink) Ingest(vehicle string, raw []byte) (batch.Ack, error) {
	h, recs, err := batch.DecodeLimit(raw, s.maxBody)
	if err == nil && h.Vehicle != vehicle {
		err = fmt.Errorf("batch of vehicle %q arrived on the topic of %q", h.Vehicle, vehicle)
	}
	if err != nil {
		return rejected(h, err)
	}
	ack := batch.Ack{Vehicle: h.Vehicle, Store: h.Store, Boot: h.Boot, Stream: h.Stream, FirstSeq: h.FirstSeq, LastSeq: h.LastSeq}
	k := key{h.Vehicle, h.Store, h.Stream}
	st := s.stream(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.checkLineage(k, st, h); errors.Is(err, ErrLineage) {
		return rejected(h, err)
	} else if err != nil {
		return batch.Ack{}, err
	}
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
			b, err = batch.Encode(batch.Header{Vehicle: h.Vehicle, Store: h.Store, Stream: h.Stream, Boot: h.Boot,
				Parent: h.Parent, ParentLast: h.ParentLast, Checkpoint: h.Checkpoint, Compression: batch.Flate}, part)
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

// rejected is the rejected ack of the batch h and the error that says
// why.
func rejected(h batch.Header, err error) (batch.Ack, error) {
	ack := batch.Ack{Vehicle: h.Vehicle, Store: h.Store, Boot: h.Boot, Stream: h.Stream, FirstSeq: h.FirstSeq, LastSeq: h.LastSeq,
		Status: batch.StatusRejected, Reason: err.Error()}
	return ack, fmt.Errorf("%w: %w", ErrRejected, err)
}
