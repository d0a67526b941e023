package ingest_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/presence"
	"github.com/vigil-av/vigil/sync/sink"
)

// The stores of the restored vehicle: dead died, restored was restored
// from its checkpoint ckpt, which held its events up to 90.
const (
	dead     uint64 = 0xdead
	restored uint64 = 0xb0b
	ckpt            = "000007-incremental"
)

func encLineage(t *testing.T, store, parent, parentLast uint64, checkpoint string, first, last uint64) []byte {
	t.Helper()
	var recs []batch.Record
	for s := first; s <= last; s++ {
		recs = append(recs, batch.Record{Seq: s, Kind: record.KindData, Boot: 1, Wall: time.Unix(1_700_000_000+int64(s), 0), Payload: []byte("event")})
	}
	raw, err := batch.Encode(batch.Header{Vehicle: "veh-1", Stream: record.StreamEvents, Store: store, Boot: 1, Parent: parent,
		ParentLast: parentLast, Checkpoint: checkpoint, Compression: batch.Flate}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func heartbeat(t *testing.T, store uint64, boot uint32, seq, head uint64) []byte {
	t.Helper()
	raw, err := presence.Heartbeat{Vehicle: "veh-1", Boot: boot, Seq: seq, Wall: time.UnixMilli(1_700_000_500_000), Interval: time.Second,
		Store: store, Heads: map[string]uint64{record.StreamEvents: head}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastHeartbeat is the sink's recorded heartbeat of store.
func lastHeartbeat(sk *sink.Sink, store uint64) *sink.Heartbeat {
	for _, v := range sk.Report().Vehicles {
		for _, s := range v.Stores {
			if s.Store == store {
				return s.Heartbeat
			}
		}
	}
	return nil
}

// TestRestoredVehicle runs a restore's story through the broker: the
// dead store's events 1..100 and its retained heartbeat (head 130); a
// stale heartbeat that changes nothing; the restored store's re-sends of
// the dead store's 81..90 (duplicates) and its own 91..120 with the
// lineage (parent last 90); a contradicting lineage rejected with a
// reason. The report shows the dead store lost 101..130. An ingester
// started later, over the reopened sink, gets the retained heartbeat
// it missed while none ran.
func TestRestoredVehicle(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := filepath.Join(t.TempDir(), "sink")
	sk, err := sink.Open(dir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	cfg := ingest.Config{Broker: b.URL(), ClientID: "ingest-a", ConnectTimeout: 2 * time.Second, PublishTimeout: 2 * time.Second}
	in := startSubscribed(t, cfg, sk, log)

	c := b.Client(t, "veh-1", nil)
	var mu sync.Mutex
	var acks []batch.Ack
	if err := mqtttest.Subscribe(c, ingest.AckTopic("veh-1"), func(_ mqtt.Client, m mqtt.Message) {
		a, err := batch.DecodeAck(m.Payload())
		if err != nil {
			t.Errorf("bad ack: %v", err)
			return
		}
		mu.Lock()
		acks = append(acks, a)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	// send publishes a batch and waits for its ack.
	send := func(raw []byte, want batch.Status) batch.Ack {
		t.Helper()
		mu.Lock()
		acks = nil
		mu.Unlock()
		if err := mqtttest.Publish(c, "vigil/v1/veh-1/telemetry", raw, false); err != nil {
			t.Fatal(err)
		}
		var a batch.Ack
		waitFor(t, "an ack", func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(acks) > 0 {
				a = acks[0]
			}
			return len(acks) > 0
		})
		if a.Status != want {
			t.Fatalf("ack %+v, want %s", a, want)
		}
		return a
	}
	for first := uint64(1); first <= 100; first += 25 {
		send(encLineage(t, dead, 0, 0, "", first, first+24), batch.StatusStored)
	}
	if err := mqtttest.Publish(c, presence.HeartbeatTopic("veh-1"), heartbeat(t, dead, 3, 40, 130), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the heartbeat", func() bool { hb := lastHeartbeat(sk, dead); return hb != nil && hb.Seq == 40 })
	// A stale one (not retained, so that the next ingester does not get
	// it): heard, not recorded.
	if err := mqtttest.Publish(c, presence.HeartbeatTopic("veh-1"), heartbeat(t, dead, 3, 39, 120), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stale heartbeat", func() bool { return in.Stats().HeartbeatsOld == 1 })
	if hb := lastHeartbeat(sk, dead); hb.Seq != 40 || hb.Heads[record.StreamEvents] != 130 {
		t.Errorf("a stale heartbeat overwrote the last: %+v", hb)
	}

	send(encLineage(t, dead, 0, 0, "", 81, 90), batch.StatusDuplicate)
	send(encLineage(t, restored, dead, 90, ckpt, 91, 105), batch.StatusStored)
	send(encLineage(t, restored, dead, 90, ckpt, 106, 120), batch.StatusStored)
	a := send(encLineage(t, restored, dead, 95, ckpt, 121, 122), batch.StatusRejected)
	if !strings.Contains(a.Reason, "parent last") {
		t.Errorf("rejection's reason %q does not say why", a.Reason)
	}

	rep := sk.Report()
	v := rep.Vehicles[0]
	if len(v.Stores) != 2 || v.Stores[0].Store != dead || v.Stores[1].Store != restored || v.Stores[1].Lineage == nil ||
		v.Stores[1].Lineage.Checkpoint != ckpt || len(v.Stores[0].Successors) != 1 {
		t.Fatalf("stores %+v", v.Stores)
	}
	lost := v.Stores[0].Successors[0].Streams[0]
	if lost.Count != 30 || len(lost.Lost) != 1 || lost.Lost[0] != (sink.Range{First: 101, Last: 130}) || lost.HeadAtLeast {
		t.Errorf("lost %+v, want 101-130", lost)
	}
	for _, s := range v.Streams {
		if s.Store == restored && (s.From != 91 || s.Through != 120 || len(s.Missing) != 0) {
			t.Errorf("restored events %+v", s)
		}
	}

	// The ingester goes; a later heartbeat is retained while none runs;
	// a new ingester over the reopened sink gets it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mqtttest.Publish(c, presence.HeartbeatTopic("veh-1"), heartbeat(t, restored, 1, 2, 140), true); err != nil {
		t.Fatal(err)
	}
	sk2, err := sink.Open(dir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if hb := lastHeartbeat(sk2, restored); hb != nil {
		t.Fatalf("heartbeat recorded with no ingester running: %+v", hb)
	}
	cfg.ClientID = "ingest-b"
	in2 := startSubscribed(t, cfg, sk2, log)
	waitFor(t, "the retained heartbeat", func() bool { hb := lastHeartbeat(sk2, restored); return hb != nil && hb.Seq == 2 })
	if hb := lastHeartbeat(sk2, dead); hb == nil || hb.Seq != 40 || hb.Heads[record.StreamEvents] != 130 {
		t.Errorf("the dead store's heartbeat after the restart: %+v", hb)
	}
	if st := in2.Stats(); st.Heartbeats != 1 || st.HeartbeatErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}
