package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	gosync "sync"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/batch"
)

// Lineage is where a restored store came from, as its batches said
// (batch.Header's Parent, ParentLast and Checkpoint).
type Lineage struct {
	// Parent is the store it was restored from.
	Parent uint64
	// Checkpoint is the id of the parent's checkpoint it was restored
	// from.
	Checkpoint string
	// ParentLast is, per stream, the highest seq of the stream the
	// parent had in the checkpoint; the restored store's seqs of the
	// stream start after it. A stream is here once the restored store's
	// first batch of it has been stored.
	ParentLast map[string]uint64
	// Recorded is when the sink recorded the first stream's lineage, on
	// its clock: about when the restored store's first batch arrived.
	Recorded time.Time
}

// ErrLineage is wrapped by the error Ingest returns (with a rejected ack)
// for a batch whose lineage contradicts the one recorded for its store,
// or whose records are the parent's.
var ErrLineage = errors.New("sink: lineage refused")

// lineageName is the file, in a restored store's stream directory, of
// the stream's lineage. One file a stream, each written once (link(2)),
// so that replicas sharing the directory never rewrite each other's.
const lineageName = "lineage.json"

type lineageJSON struct {
	V          int       `json:"v"`
	Vehicle    string    `json:"vehicle"`
	Store      string    `json:"store"`
	Stream     string    `json:"stream"`
	Parent     string    `json:"parent"`
	ParentLast uint64    `json:"parent_last"`
	Checkpoint string    `json:"checkpoint"`
	Recorded   time.Time `json:"recorded"`
}

// skey names one incarnation of a vehicle's store.
type skey struct {
	vehicle string
	store   uint64
}

// storeState is what the sink knows of a store beyond its streams'
// records: its lineage and its last heartbeat.
type storeState struct {
	mu        gosync.Mutex
	lineage   *Lineage   // nil: none recorded
	heartbeat *Heartbeat // nil: none recorded
}

// storeOf returns the state of sk, creating it.
func (s *Sink) storeOf(sk skey) *storeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.stores[sk]
	if ss == nil {
		ss = &storeState{}
		s.stores[sk] = ss
	}
	return ss
}

// entry is one stream's lineage.
type entry struct {
	parent     uint64
	last       uint64
	checkpoint string
	recorded   time.Time
}

func (e entry) String() string {
	return fmt.Sprintf("parent store %016x, checkpoint %s, parent last %d", e.parent, e.checkpoint, e.last)
}

// conflict says why e, stream k's lineage, contradicts l (nil: it does
// not, or l is nil).
func (l *Lineage) conflict(k key, e entry) error {
	if l == nil {
		return nil
	}
	if l.Parent != e.parent || l.Checkpoint != e.checkpoint {
		return fmt.Errorf("%w: %s/%s/%s: %v, but the store was restored from parent store %016x at checkpoint %s",
			ErrLineage, k.vehicle, storeDir(k.store), k.stream, e, l.Parent, l.Checkpoint)
	}
	if last, ok := l.ParentLast[k.stream]; ok && last != e.last {
		return fmt.Errorf("%w: %s/%s/%s: %v, but the stream's recorded parent last is %d",
			ErrLineage, k.vehicle, storeDir(k.store), k.stream, e, last)
	}
	return nil
}

// has reports whether l records stream's parent last.
func (l *Lineage) has(stream string) bool {
	if l == nil {
		return false
	}
	_, ok := l.ParentLast[stream]
	return ok
}

// merge adds stream k's entry to the store's lineage (ss.mu held); an
// entry that contradicts it is an error wrapping ErrLineage, and changes
// nothing. The lineage is copied on write: a Report may hold the old one.
func (ss *storeState) merge(k key, e entry) error {
	l := ss.lineage
	if l == nil {
		ss.lineage = &Lineage{Parent: e.parent, Checkpoint: e.checkpoint, ParentLast: map[string]uint64{k.stream: e.last}, Recorded: e.recorded}
		return nil
	}
	if err := l.conflict(k, e); err != nil {
		return err
	}
	if l.has(k.stream) {
		return nil
	}
	m := maps.Clone(l.ParentLast)
	m[k.stream] = e.last
	rec := l.Recorded
	if !e.recorded.IsZero() && e.recorded.Before(rec) {
		rec = e.recorded
	}
	ss.lineage = &Lineage{Parent: l.Parent, Checkpoint: l.Checkpoint, ParentLast: m, Recorded: rec}
	return nil
}

// checkLineage checks a batch of k against the lineage recorded for its
// store and, for the first batch with a lineage of a stream, records the
// stream's (st.mu held). It refuses, with an error wrapping ErrLineage
// and nothing written:
//
//   - a lineage naming another parent or checkpoint than the store's,
//     or another parent last than the stream's;
//   - a stream's first lineage when the stream already holds records up
//     to its parent last (those are the parent's);
//   - a batch without lineage holding the parent's records (seq up to
//     the stream's parent last) under the restored store's id.
func (s *Sink) checkLineage(k key, st *stream, h batch.Header) error {
	ss := s.storeOf(skey{k.vehicle, k.store})
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if h.Parent == 0 {
		if l := ss.lineage; l != nil {
			if last, ok := l.ParentLast[k.stream]; ok && h.FirstSeq <= last {
				return fmt.Errorf("%w: %s/%s/%s %d-%d without lineage: the store was restored from %016x, which had the stream up to %d: those records go under the parent's store id",
					ErrLineage, k.vehicle, storeDir(k.store), k.stream, h.FirstSeq, h.LastSeq, l.Parent, last)
			}
		}
		return nil
	}
	e := entry{parent: h.Parent, last: h.ParentLast, checkpoint: h.Checkpoint, recorded: s.now().UTC()}
	if err := ss.lineage.conflict(k, e); err != nil || ss.lineage.has(k.stream) {
		return err
	}
	// The stream's first batch with a lineage here: another replica
	// may have recorded this or other streams' since Open.
	if err := s.loadLineages(k, ss); err != nil {
		return err
	}
	if err := ss.lineage.conflict(k, e); err != nil || ss.lineage.has(k.stream) {
		return err
	}
	if len(st.stored) > 0 && st.stored[0].First <= h.ParentLast {
		return fmt.Errorf("%w: %s/%s/%s: %v, but the store already holds the stream's records %v, which would be the parent's",
			ErrLineage, k.vehicle, storeDir(k.store), k.stream, e, st.stored[0])
	}
	// Always: the directories may have gone away behind the sink's back.
	if err := s.mkdirs(k); err != nil {
		return err
	}
	st.made = true
	b, err := json.Marshal(lineageJSON{V: 1, Vehicle: k.vehicle, Store: storeDir(k.store), Stream: k.stream,
		Parent: storeDir(e.parent), ParentLast: e.last, Checkpoint: e.checkpoint, Recorded: e.recorded})
	if err != nil {
		return fmt.Errorf("sink: lineage of %s/%s/%s: %w", k.vehicle, storeDir(k.store), k.stream, err)
	}
	created, old, err := s.createOnce(s.dir(k), lineageName, append(b, '\n'))
	if err != nil {
		return err
	}
	if !created {
		// Another replica recorded it first: its entry is the stream's.
		prev, err := parseLineage(k, old)
		if err != nil {
			return fmt.Errorf("sink: %s: %w", filepath.Join(s.dir(k), lineageName), err)
		}
		if err := ss.merge(k, prev); err != nil {
			return err
		}
	}
	return ss.merge(k, e)
}

// loadLineages merges into ss the lineage files of k's store's streams
// (ss.mu held); a file that contradicts what ss holds is left out (Open
// lists it).
func (s *Sink) loadLineages(k key, ss *storeState) error {
	sdir := filepath.Join(s.root, k.vehicle, storeDir(k.store))
	streams, err := subdirs(sdir, batch.ValidName)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sink: read lineage: %w", err)
	}
	for _, name := range streams {
		sk := key{k.vehicle, k.store, name}
		e, ok, err := readLineage(sk, filepath.Join(sdir, name, lineageName))
		if err != nil || !ok {
			continue
		}
		ss.merge(sk, e) //nolint:errcheck // a contradiction is Open's to report
	}
	return nil
}

// readLineage reads a stream's lineage file; ok is false when there is
// none.
func readLineage(k key, path string) (e entry, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, err
	}
	e, err = parseLineage(k, b)
	if err != nil {
		return entry{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return e, true, nil
}

// parseLineage parses a lineage file, which must be k's.
func parseLineage(k key, b []byte) (entry, error) {
	var j lineageJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return entry{}, fmt.Errorf("lineage: %w", err)
	}
	parent, ok := parseStoreDir(j.Parent)
	switch {
	case j.V != 1:
		return entry{}, fmt.Errorf("lineage: version %d, want 1", j.V)
	case j.Vehicle != k.vehicle || j.Store != storeDir(k.store) || j.Stream != k.stream:
		return entry{}, fmt.Errorf("lineage: of %s/%s/%s, in the directory of %s/%s/%s", j.Vehicle, j.Store, j.Stream, k.vehicle, storeDir(k.store), k.stream)
	case !ok || parent == k.store:
		return entry{}, fmt.Errorf("lineage: parent store %q", j.Parent)
	}
	if !manifest.ValidID(j.Checkpoint) {
		return entry{}, fmt.Errorf("lineage: checkpoint id %q", j.Checkpoint)
	}
	return entry{parent: parent, last: j.ParentLast, checkpoint: j.Checkpoint, recorded: j.Recorded}, nil
}

// recoverLineage notes a stream's lineage file at Open (a conflict, or a
// file that does not parse, is listed with the corrupt files and left
// out).
func (s *Sink) recoverLineage(k key, path string) {
	e, ok, err := readLineage(k, path)
	if err != nil {
		s.addCorrupt(fmt.Sprintf("%v; ignored", err))
		return
	}
	if !ok {
		return
	}
	ss := s.storeOf(skey{k.vehicle, k.store})
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.merge(k, e); err != nil {
		s.addCorrupt(fmt.Sprintf("%s: %v; ignored", path, err))
	}
}
