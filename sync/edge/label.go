package edge

import (
	"fmt"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/batch"
)

// Labelling the batches of a restored store (docs/fleet.md, "Telemetry
// batches"). A store restored from a checkpoint is a new incarnation
// whose sequence numbers continue its parent's. Its records up to the
// parent's last of their stream (as the checkpoint listed them) are the
// parent's, which the dead unit may have uploaded already: they go under
// the parent's store id with no lineage, so that the sink answers
// duplicate for what it holds and stores the rest once. Later records go
// under the store's own id with the lineage. No batch holds both, and an
// ack counts only for the records its store labels.

// labels says how the uploader labels a restored store's batches; nil
// for a store that was never restored.
type labels struct {
	parent     uint64
	checkpoint string
	last       map[string]uint64 // per stream; absent: 0
}

// lineageSource is an outbox that knows its lineage (*storage.Store).
type lineageSource interface {
	Lineage() (storage.Lineage, bool)
}

// newLabels checks the lineage of cfg (or, when it has none, the
// outbox's) against the outbox's store id.
func newLabels(l *storage.Lineage, outbox storage.Outbox) (*labels, error) {
	if l == nil {
		src, ok := outbox.(lineageSource)
		if !ok {
			return nil, nil
		}
		own, ok := src.Lineage()
		if !ok {
			return nil, nil
		}
		l = &own
	}
	switch {
	case l.Parent == 0:
		return nil, fmt.Errorf("edge: Lineage: no parent store")
	case l.Parent == outbox.StoreID():
		return nil, fmt.Errorf("edge: Lineage: parent store %016x is the outbox's own", l.Parent)
	case !manifest.ValidID(l.Checkpoint):
		return nil, fmt.Errorf("edge: Lineage: checkpoint id %q", l.Checkpoint)
	}
	lb := &labels{parent: l.Parent, checkpoint: l.Checkpoint, last: make(map[string]uint64, len(l.ParentLast))}
	for name, last := range l.ParentLast {
		if !batch.ValidName(name) {
			return nil, fmt.Errorf("edge: Lineage: stream %q", name)
		}
		lb.last[name] = last
	}
	return lb, nil
}

// nextBatch packs the next batch of stream after seq after from r,
// labelled: the parent's records (through its last) under the parent's
// store id, the rest under the store's own with the lineage.
func (u *Uploader) nextBatch(r batch.Reader, stream string, after uint64) ([]byte, batch.Header, int, error) {
	p := u.packer
	if lb := u.labels; lb != nil {
		last := lb.last[stream]
		if after < last {
			p.Store = lb.parent
			r = through{Reader: r, last: last}
		} else {
			p.Parent, p.ParentLast, p.Checkpoint = lb.parent, last, lb.checkpoint
		}
	}
	return p.Next(r, stream, after)
}

// ownsAck says whether an ack of store for stream's records first to
// last answers batches this uploader labels so: its own store's after
// the parent's last, the parent's through it.
func (u *Uploader) ownsAck(store uint64, stream string, first, last uint64) bool {
	lb := u.labels
	if lb == nil {
		return store == u.packer.Store
	}
	switch store {
	case u.packer.Store:
		return first > lb.last[stream]
	case lb.parent:
		return last <= lb.last[stream]
	}
	return false
}

// through is a Reader that returns no record after last.
type through struct {
	batch.Reader
	last uint64
}

func (t through) Read(stream string, after uint64, maxRecords, maxBytes int) ([]storage.Record, error) {
	if after >= t.last {
		return nil, nil
	}
	recs, err := t.Reader.Read(stream, after, maxRecords, maxBytes)
	for i, rec := range recs {
		if rec.Seq > t.last {
			return recs[:i], err
		}
	}
	return recs, err
}
