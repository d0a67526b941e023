package edge_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// TestRejectedBatchBacksOff: a cloud that rejects every batch (here a
// bare client answering each with a rejection) gets each batch again
// at a doubling interval, not every AckTimeout; nothing is acknowledged
// and the cursor does not move. Then a real ingester takes over and the
// stream drains.
func TestRejectedBatchBacksOff(t *testing.T) {
	r := newRig(t)
	r.appendN(storage.StreamEvents, 20) // one batch
	var mu sync.Mutex
	sends := map[string]int{}
	rejecter := r.broker.Client(t, "rejecter", nil)
	err := mqtttest.Subscribe(rejecter, edge.TelemetryTopic(vehicle), func(c mqtt.Client, m mqtt.Message) {
		h, _, err := batch.Decode(m.Payload())
		if err != nil {
			t.Errorf("undecodable batch: %v", err)
			return
		}
		mu.Lock()
		sends[fmt.Sprintf("%s %d-%d", h.Stream, h.FirstSeq, h.LastSeq)]++
		mu.Unlock()
		ack, err := batch.EncodeAck(batch.Ack{Vehicle: h.Vehicle, Store: h.Store, Boot: h.Boot, Stream: h.Stream,
			FirstSeq: h.FirstSeq, LastSeq: h.LastSeq, Status: batch.StatusRejected, Reason: "vehicle not registered"})
		if err != nil {
			t.Errorf("ack: %v", err)
			return
		}
		c.Publish(edge.AckTopic(vehicle), 1, false, ack)
	})
	if err != nil {
		t.Fatal(err)
	}
	const ackTimeout = 100 * time.Millisecond
	r.startUploader(func(c *edge.Config) { c.AckTimeout = ackTimeout; c.RejectBackoffMax = time.Hour })
	const watch = 2 * time.Second
	time.Sleep(watch)
	mu.Lock()
	got := map[string]int{}
	for k, v := range sends {
		got[k] = v
	}
	mu.Unlock()
	// At a fixed 100 ms the batch would go about 20 times in 2 s; with
	// the wait doubling from 100 ms (0, 0.2, 0.6, 1.4 s after the first
	// rejection...) about 4 or 5, whatever the machine's load adds.
	if len(got) == 0 {
		t.Fatal("no batch sent")
	}
	for k, n := range got {
		if n > 6 {
			t.Errorf("batch %s sent %d times in %v after rejections, want the resends to back off", k, n, watch)
		}
		if n < 2 {
			t.Errorf("batch %s sent %d times: never tried again after a rejection", k, n)
		}
	}
	st := r.up.Stats()
	var rejected uint64
	for _, s := range st.Streams {
		rejected += s.Rejected
	}
	if rejected == 0 || r.cursor(storage.StreamEvents) != 0 {
		t.Fatalf("rejections %d, cursor %d: a rejection must count and never acknowledge", rejected, r.cursor(storage.StreamEvents))
	}
	rejecter.Disconnect(0)

	// A working ingester: the resend at the next backoff step drains it;
	// SyncNow sends at once.
	r.startIngester("ingest-a")
	r.up.SyncNow()
	r.waitDrained(10 * time.Second)
}
