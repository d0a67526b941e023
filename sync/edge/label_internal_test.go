package edge

import (
	"strings"
	"testing"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
)

type idOutbox struct {
	storage.Outbox
	id uint64
}

func (o idOutbox) StoreID() uint64 { return o.id }

type lineageOutbox struct {
	idOutbox
	l storage.Lineage
}

func (o lineageOutbox) Lineage() (storage.Lineage, bool) { return o.l, true }

// recsReader serves records first..last of any stream.
type recsReader struct{ first, last uint64 }

func (r recsReader) Read(stream string, after uint64, maxRecords, maxBytes int) ([]storage.Record, error) {
	var out []storage.Record
	for seq := max(after+1, r.first); seq <= r.last && len(out) < maxRecords; seq++ {
		out = append(out, storage.Record{Stream: stream, Seq: seq, Kind: storage.KindData, Payload: []byte("x")})
	}
	return out, nil
}

// TestLabels: a batch never straddles the parent's last; the parent's
// records go under its id with no lineage, later ones under the store's
// with it; an ack counts only for the records its store labels.
func TestLabels(t *testing.T) {
	const own, parent = 0xaaaa, 0xbbbb
	l := storage.Lineage{Parent: parent, Checkpoint: "000002-incremental", ParentLast: map[string]uint64{"logs": 100}}
	lb, err := newLabels(&l, idOutbox{id: own})
	if err != nil {
		t.Fatal(err)
	}
	u := &Uploader{packer: batch.Packer{Vehicle: "veh-1", Store: own}, labels: lb}
	_, h, n, err := u.nextBatch(recsReader{95, 120}, "logs", 94)
	if err != nil || n != 6 || h.Store != parent || h.Parent != 0 || h.Checkpoint != "" || h.FirstSeq != 95 || h.LastSeq != 100 {
		t.Errorf("the parent's records: %d, %+v, %v", n, h, err)
	}
	_, h, n, err = u.nextBatch(recsReader{95, 120}, "logs", 100)
	if err != nil || n != 20 || h.Store != own || h.Parent != parent || h.ParentLast != 100 || h.Checkpoint != l.Checkpoint || h.FirstSeq != 101 {
		t.Errorf("the store's own records: %d, %+v, %v", n, h, err)
	}
	// A stream the checkpoint held nothing of: every record is the store's.
	if _, h, _, err = u.nextBatch(recsReader{1, 3}, "health", 0); err != nil || h.Store != own || h.Parent != parent || h.ParentLast != 0 {
		t.Errorf("a stream with no parent records: %+v, %v", h, err)
	}
	for _, c := range []struct {
		store       uint64
		stream      string
		first, last uint64
		want        bool
	}{
		{own, "logs", 101, 200, true},
		{own, "logs", 100, 200, false},
		{parent, "logs", 1, 100, true},
		{parent, "logs", 90, 101, false},
		{parent, "health", 1, 1, false},
		{own, "health", 1, 1, true},
		{0xcccc, "logs", 101, 200, false},
	} {
		if got := u.ownsAck(c.store, c.stream, c.first, c.last); got != c.want {
			t.Errorf("ack of %x %s %d-%d: owned %v, want %v", c.store, c.stream, c.first, c.last, got, c.want)
		}
	}
	// Never restored: only its own store's acks.
	u.labels = nil
	if !u.ownsAck(own, "logs", 1, 5) || u.ownsAck(parent, "logs", 1, 5) {
		t.Error("a store never restored takes acks of another")
	}
	if _, h, _, _ := u.nextBatch(recsReader{1, 3}, "logs", 0); h.Store != own || h.Parent != 0 {
		t.Errorf("a store never restored labels %+v", h)
	}
}

func TestNewLabels(t *testing.T) {
	ok := storage.Lineage{Parent: 2, Checkpoint: "000001-full", ParentLast: map[string]uint64{"logs": 7}}
	// The outbox's own lineage, when the config has none.
	lb, err := newLabels(nil, lineageOutbox{idOutbox{id: 1}, ok})
	if err != nil || lb == nil || lb.parent != 2 || lb.last["logs"] != 7 {
		t.Errorf("from the outbox: %+v, %v", lb, err)
	}
	if lb, err := newLabels(nil, idOutbox{id: 1}); lb != nil || err != nil {
		t.Errorf("no lineage: %+v, %v", lb, err)
	}
	for _, c := range []struct {
		edit func(*storage.Lineage)
		want string
	}{
		{func(l *storage.Lineage) { l.Parent = 0 }, "no parent"},
		{func(l *storage.Lineage) { l.Parent = 1 }, "outbox's own"},
		{func(l *storage.Lineage) { l.Checkpoint = "latest" }, "checkpoint id"},
		{func(l *storage.Lineage) { l.ParentLast = map[string]uint64{"a/b": 1} }, "stream"},
	} {
		l := ok
		c.edit(&l)
		if _, err := newLabels(&l, idOutbox{id: 1}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", l, err, c.want)
		}
	}
}
