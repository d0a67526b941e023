package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// headerSpy records the headers of the batches published on the rig's
// telemetry topics.
type headerSpy struct {
	mu   sync.Mutex
	hdrs []batch.Header
}

func (r *rig) spyHeaders(streams ...string) *headerSpy {
	r.t.Helper()
	s := &headerSpy{}
	c := r.broker.Client(r.t, "header-spy-"+r.vehicle, nil)
	for _, name := range streams {
		if err := mqtttest.Subscribe(c, edge.StreamTopic(r.vehicle, name), func(_ mqtt.Client, m mqtt.Message) {
			h, _, err := batch.Decode(m.Payload())
			if err != nil {
				r.t.Errorf("a batch that does not decode on %s: %v", m.Topic(), err)
				return
			}
			s.mu.Lock()
			s.hdrs = append(s.hdrs, h)
			s.mu.Unlock()
		}); err != nil {
			r.t.Fatal(err)
		}
	}
	return s
}

// sendAs ingests into the rig's sink, as the dead unit's uploader would
// have, the records of stream in (after, through] of store s.
func (r *rig) sendAs(s *storage.Store, stream string, after, through uint64) {
	r.t.Helper()
	p := batch.Packer{Vehicle: r.vehicle, Store: s.StoreID(), Boot: s.Boot(), Compression: batch.Flate, MaxPayload: 4 << 10}
	for after < through {
		recs, err := s.Read(stream, after, 100, 1<<20)
		if err != nil || len(recs) == 0 {
			r.t.Fatalf("read %s after %d: %d records, %v", stream, after, len(recs), err)
		}
		for i, rec := range recs {
			if rec.Seq > through {
				recs = recs[:i]
				break
			}
		}
		raw, h, _, err := p.Pack(stream, recs)
		if err != nil {
			r.t.Fatal(err)
		}
		if a, err := r.sink.Ingest(r.vehicle, raw); err != nil || a.Status != batch.StatusStored {
			r.t.Fatalf("the dead unit's batch %s %d-%d: %+v, %v", stream, h.FirstSeq, h.LastSeq, a, err)
		}
		after = h.LastSeq
	}
}

// restoredRig is a rig of the same vehicle, broker and sink on the store
// restored into dir.
func (r *rig) restoredRig(dir string) *rig {
	t := r.t
	t.Helper()
	r2 := &rig{t: t, vehicle: r.vehicle, broker: r.broker, sinkDir: r.sinkDir, sink: r.sink, appended: map[string]map[uint64][]byte{}}
	cfg := storage.DefaultConfig()
	cfg.Dir = dir
	s, err := storage.Open(context.Background(), cfg, logger(t))
	if err != nil {
		t.Fatalf("storage.Open %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	r2.store = s
	return r2
}

// TestRestoredStoreLabelsItsBatches: a vehicle's store is checkpointed
// with 500 records a stream; the unit then sends records 1-250 and,
// after the checkpoint, 501-550, and dies. Its store, restored from the
// checkpoint onto a replacement, uploads 1-500 under the parent's store
// id with no lineage (1-250 acknowledged as duplicates, nothing stored
// twice) and its own records from 501 under its new id with the
// lineage; the parent's 501-550 stay as the dead unit sent them.
func TestRestoredStoreLabelsItsBatches(t *testing.T) {
	streams := []string{storage.StreamInference, storage.StreamHealth}
	r := newRig(t)
	for _, s := range streams {
		r.appendN(s, 500)
	}
	r.waitDurable()
	chain := filepath.Join(t.TempDir(), "chain")
	m, err := checkpoint.Take(context.Background(), r.store, checkpoint.Options{Dir: chain, Kind: checkpoint.Full, Vehicle: vehicle, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	parent := r.store.StoreID()
	for _, s := range streams {
		r.sendAs(r.store, s, 0, 250)
		r.appendN(s, 50)
	}
	r.waitDurable()
	for _, s := range streams {
		r.sendAs(r.store, s, 500, 550)
	}

	target := filepath.Join(t.TempDir(), "db")
	res, err := checkpoint.RestoreChain(context.Background(), chain, "", target, checkpoint.RestoreOptions{Vehicle: vehicle, Reincarnate: true})
	if err != nil {
		t.Fatal(err)
	}
	r2 := r.restoredRig(target)
	if r2.store.StoreID() != res.Store || res.Store == parent {
		t.Fatalf("restored store %016x, RestoreChain said %016x (parent %016x)", r2.store.StoreID(), res.Store, parent)
	}
	last := res.Lineage.ParentLast
	acks := r2.spyAcks()
	hdrs := r2.spyHeaders(r2.store.Streams()...)
	r2.startIngester("ingest-a")
	r2.startUploader()
	for _, s := range streams {
		r2.appendN(s, 100)
	}
	r2.waitDurable()
	waitUntil(t, 15*time.Second, "the restored store acknowledged through its heads", func() (bool, string) {
		for _, ss := range r2.store.Stats().Streams {
			if ss.Cursor != ss.Durable {
				return false, ss.Name + " not acknowledged yet"
			}
		}
		return true, ""
	})

	for _, s := range streams {
		if last[s] != 500 {
			t.Fatalf("%s: parent last %d, want 500", s, last[s])
		}
		// The parent's records: each once, the checkpoint's and the
		// dead unit's later ones as it sent them.
		recs, err := r.sink.ReadStore(vehicle, parent, s, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 550 {
			t.Errorf("%s: %d records of the parent store in the sink, want 550", s, len(recs))
		}
		for i, rec := range recs {
			if rec.Seq != uint64(i)+1 || !bytes.Equal(rec.Payload, r.appended[s][rec.Seq]) {
				t.Fatalf("%s: the parent's record %d: seq %d, payload %q", s, i, rec.Seq, rec.Payload)
			}
		}
		// The restored store's own: from 501, under its id.
		recs, err = r.sink.ReadStore(vehicle, res.Store, s, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 100 {
			t.Errorf("%s: %d records of the restored store in the sink, want 100", s, len(recs))
		}
		for i, rec := range recs {
			if rec.Seq != 501+uint64(i) || !bytes.Equal(rec.Payload, r2.appended[s][rec.Seq]) {
				t.Fatalf("%s: the restored store's record %d: seq %d, payload %q", s, i, rec.Seq, rec.Payload)
			}
		}
	}
	// The spy is a client of its own: its copies of the acks may trail
	// the uploader's under load, so wait for them before judging.
	waitUntil(t, 15*time.Second, "the ack spy to see every acknowledgement", func() (bool, string) {
		for _, s := range streams {
			for seq := uint64(1); seq <= 600; seq++ {
				if !acks.covered(s, seq) {
					return false, fmt.Sprintf("%s %d not seen", s, seq)
				}
			}
		}
		return true, ""
	})
	checkRestoredAcks(t, acks, streams, parent, res.Store, last)
	checkRestoredHeaders(t, hdrs, parent, res.Store, res.Lineage.Checkpoint, last)
	if res.Lineage.Checkpoint != m.ID {
		t.Errorf("lineage of checkpoint %s, restored %s", res.Lineage.Checkpoint, m.ID)
	}
}

// checkRestoredAcks: the parent's records were acknowledged under its id
// (some as duplicates: the dead unit had sent 1-250), the restored
// store's under its own, none across the boundary, nothing rejected.
func checkRestoredAcks(t *testing.T, acks *ackSpy, streams []string, parent, store uint64, last map[string]uint64) {
	t.Helper()
	acks.mu.Lock()
	defer acks.mu.Unlock()
	for _, s := range streams {
		parentAcked, ownAcked := map[uint64]bool{}, map[uint64]bool{}
		var dup, stored bool
		for _, a := range acks.acks {
			if a.Stream != s {
				continue
			}
			switch {
			case a.Status == batch.StatusRejected:
				t.Errorf("%s: rejected %d-%d: %s", s, a.FirstSeq, a.LastSeq, a.Reason)
			case a.Store == parent && a.LastSeq <= last[s]:
				for seq := a.FirstSeq; seq <= a.LastSeq; seq++ {
					parentAcked[seq] = true
				}
				dup = dup || a.Status == batch.StatusDuplicate && a.LastSeq <= 250
				stored = stored || a.Status == batch.StatusStored
			case a.Store == store && a.FirstSeq > last[s]:
				for seq := a.FirstSeq; seq <= a.LastSeq; seq++ {
					ownAcked[seq] = true
				}
			default:
				t.Errorf("%s: an ack out of place: %+v", s, a)
			}
		}
		if len(parentAcked) != 500 || len(ownAcked) != 100 || !dup || !stored {
			t.Errorf("%s: %d of the parent's records acknowledged (a duplicate: %v, stored: %v), %d of the restored store's; want 500, both, 100",
				s, len(parentAcked), dup, stored, len(ownAcked))
		}
	}
}

// checkRestoredHeaders: each batch is the parent's records under its id
// with no lineage, or the restored store's after them with the lineage.
func checkRestoredHeaders(t *testing.T, hdrs *headerSpy, parent, store uint64, ckpt string, last map[string]uint64) {
	t.Helper()
	hdrs.mu.Lock()
	defer hdrs.mu.Unlock()
	var parents, owns int
	for _, h := range hdrs.hdrs {
		switch {
		case h.Store == parent && h.Parent == 0 && h.ParentLast == 0 && h.Checkpoint == "" && h.LastSeq <= last[h.Stream]:
			parents++
		case h.Store == store && h.Parent == parent && h.ParentLast == last[h.Stream] && h.Checkpoint == ckpt && h.FirstSeq > last[h.Stream]:
			owns++
		default:
			t.Errorf("a batch labelled out of place: %+v", h)
		}
	}
	if parents == 0 || owns == 0 {
		t.Errorf("%d batches of the parent's records, %d of the restored store's", parents, owns)
	}
}
