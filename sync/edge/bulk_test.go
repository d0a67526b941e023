package edge_test

import (
	"context"
	"errors"
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

const bulkTopic = "vigil/v1/" + vehicle + "/checkpoints"

// bulkSpy notes when each message on the bulk topic reached the broker's
// subscriber, and what the sink held then. It also subscribes to the
// telemetry topic on the same connection, and notes the records of each
// batch it saw: the broker delivers one subscriber's messages in the
// order it received them, so a record in a batch seen before a bulk
// message went to the broker before it.
type bulkSpy struct {
	mu    sync.Mutex
	at    []time.Time
	bytes []int
	check []string // what was wrong when the message arrived ("" when nothing)
	seen  map[string][][2]uint64
}

// sent says whether the spy saw a batch holding stream's record seq.
func (s *bulkSpy) sent(stream string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rg := range s.seen[stream] {
		if rg[0] <= seq && seq <= rg[1] {
			return true
		}
	}
	return false
}

func (r *rig) spyBulk(check func(*bulkSpy) string) *bulkSpy {
	r.t.Helper()
	s := &bulkSpy{seen: map[string][][2]uint64{}}
	c := r.broker.Client(r.t, "bulk-spy", nil)
	if err := mqtttest.Subscribe(c, edge.TelemetryTopic(vehicle), func(_ mqtt.Client, m mqtt.Message) {
		if h, _, err := batch.Decode(m.Payload()); err == nil {
			s.mu.Lock()
			s.seen[h.Stream] = append(s.seen[h.Stream], [2]uint64{h.FirstSeq, h.LastSeq})
			s.mu.Unlock()
		}
	}); err != nil {
		r.t.Fatal(err)
	}
	if err := mqtttest.Subscribe(c, bulkTopic, func(_ mqtt.Client, m mqtt.Message) {
		why := ""
		if check != nil {
			why = check(s)
		}
		s.mu.Lock()
		s.at, s.bytes, s.check = append(s.at, time.Now()), append(s.bytes, len(m.Payload())), append(s.check, why)
		s.mu.Unlock()
	}); err != nil {
		r.t.Fatal(err)
	}
	return s
}

func (s *bulkSpy) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}

// TestPublishBulkWaitsForTelemetry: with no ingester, telemetry fills the
// uploader's window and records wait behind it; a bulk message waits too
// (PublishBulk does not return, nothing reaches the broker). Once an
// ingester comes and the records drain, the bulk message goes, and every
// record appended before it went to the broker first: stored in the cloud
// already, or in a batch the broker delivered before it (the stream's
// latest batch may still be in flight; it holds nothing back).
func TestPublishBulkWaitsForTelemetry(t *testing.T) {
	r := newRig(t)
	r.startUploader(func(c *edge.Config) { c.Window = 2 })
	waitUntil(t, 10*time.Second, "uploader online", func() (bool, string) {
		s := r.up.State()
		return s == edge.Live || s == edge.Draining, s.String()
	})
	r.appendN(storage.StreamEvents, 400) // many 4 KiB batches: more than the window
	r.waitDurable()
	last := r.store.Stream(storage.StreamEvents).Durable()
	spy := r.spyBulk(func(s *bulkSpy) string {
		for seq := uint64(1); seq <= last; seq++ {
			if !r.stored(storage.StreamEvents, seq) && !s.sent(storage.StreamEvents, seq) {
				return fmt.Sprintf("record %d of %d neither stored nor sent before it", seq, last)
			}
		}
		return ""
	})
	done := make(chan error, 1)
	go func() { done <- r.up.PublishBulk(context.Background(), bulkTopic, []byte("chunk")) }()
	select {
	case err := <-done:
		t.Fatalf("PublishBulk returned (%v) while records waited for the ingester", err)
	case <-time.After(700 * time.Millisecond):
	}
	if n := spy.count(); n != 0 {
		t.Fatalf("%d bulk messages reached the broker while records waited", n)
	}
	r.startIngester("ingest-a")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("PublishBulk: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("PublishBulk still waiting after the records drained: %+v", r.up.Stats())
	}
	waitUntil(t, 5*time.Second, "the bulk message at the spy", func() (bool, string) { return spy.count() == 1, "" })
	if why := spy.check[0]; why != "" {
		t.Fatalf("the bulk message overtook telemetry: %s", why)
	}
	r.waitDrained(10 * time.Second)
}

// TestPublishBulkNotStarved: under a steady live stream (a record every
// 10 ms, each acknowledged), bulk messages still go: a stream that only
// ever has its latest batch in flight does not hold them back.
func TestPublishBulkNotStarved(t *testing.T) {
	r := newRig(t)
	r.startIngester("ingest-a")
	r.startUploader()
	l := r.live(storage.StreamEvents)
	defer l.halt()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 10 {
		if err := r.up.PublishBulk(ctx, bulkTopic, make([]byte, 2<<10)); err != nil {
			t.Fatalf("bulk message %d: %v", i, err)
		}
	}
	l.halt()
	r.waitDrained(10 * time.Second)
}

// TestPublishBulkRateCap: bulk messages take their bytes from the rate
// bucket: over the run, the bytes that reached the broker never exceed
// the cap times the time since the first plus the bucket (one
// MaxPayload).
func TestPublishBulkRateCap(t *testing.T) {
	const rate, payload, size, n = 32 << 10, 8 << 10, 4 << 10, 24 // 96 KiB at 32 KiB/s
	r := newRig(t)
	r.startIngester("ingest-a")
	r.startUploader(func(c *edge.Config) { c.MaxBytesPerSecond, c.MaxPayload = rate, payload })
	spy := r.spyBulk(nil)
	start := time.Now()
	for i := range n {
		if err := r.up.PublishBulk(context.Background(), bulkTopic, make([]byte, size)); err != nil {
			t.Fatalf("bulk message %d: %v", i, err)
		}
	}
	waitUntil(t, 5*time.Second, "every bulk message at the spy", func() (bool, string) { return spy.count() == n, "" })
	spy.mu.Lock()
	defer spy.mu.Unlock()
	total := 0
	for i, at := range spy.at {
		total += spy.bytes[i]
		if allowed := payload + int(at.Sub(start).Seconds()*rate); total > allowed+size {
			t.Fatalf("%d bytes had reached the broker %v after the first; the cap allows %d", total, at.Sub(start), allowed)
		}
	}
	if took, least := time.Since(start), time.Duration(float64(n*size-payload)/rate*float64(time.Second)); took < least {
		t.Fatalf("%d bytes went in %v: faster than the cap allows (%v)", n*size, took, least)
	}
}

// TestPublishBulkRefusals: a payload over MaxPayload, a bad topic, an
// ended ctx and a closed uploader are errors; offline it waits for ctx.
func TestPublishBulkRefusals(t *testing.T) {
	r := newRig(t)
	r.startUploader()
	ctx := context.Background()
	if err := r.up.PublishBulk(ctx, bulkTopic, make([]byte, 4<<10+1)); err == nil {
		t.Error("a payload over MaxPayload was published")
	}
	if err := r.up.PublishBulk(ctx, "vigil/v1/+/checkpoints", []byte("x")); err == nil {
		t.Error("a wildcard topic was published to")
	}
	r.broker.Stop()
	waitUntil(t, 10*time.Second, "offline", func() (bool, string) {
		s := r.up.State()
		return s == edge.Offline || s == edge.Connecting, s.String()
	})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := r.up.PublishBulk(short, bulkTopic, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("offline: %v, want the ctx's deadline", err)
	}
	closeWithin(t, "uploader", r.up.Close)
	if err := r.up.PublishBulk(ctx, bulkTopic, []byte("x")); !errors.Is(err, edge.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}
