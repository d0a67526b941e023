package edge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	checkBulkWaits(t, func(r *rig) error {
		return r.up.PublishBulk(context.Background(), bulkTopic, []byte("chunk"))
	})
}

// TestTakeBulkWaitsForTelemetry: TakeBulk waits as PublishBulk does. It
// publishes nothing, so a marker published right after it returns
// (Publish, which waits for nothing) stands for it at the broker: every
// record appended before the wait went to the broker before the marker.
// Its bytes are more than MaxPayload: every piece waits.
func TestTakeBulkWaitsForTelemetry(t *testing.T) {
	checkBulkWaits(t, func(r *rig) error {
		if err := r.up.TakeBulk(context.Background(), 3*(4<<10)); err != nil {
			return err
		}
		return r.up.Publish(bulkTopic, []byte("marker"), false, 5*time.Second)
	})
}

// checkBulkWaits runs bulk while records wait for an ingester (it must
// not return, nor anything reach the bulk topic), then starts one: bulk
// returns, and what it put on the bulk topic came after every record.
func checkBulkWaits(t *testing.T, bulk func(*rig) error) {
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
	go func() { done <- bulk(r) }()
	select {
	case err := <-done:
		t.Fatalf("the bulk call returned (%v) while records waited for the ingester", err)
	case <-time.After(700 * time.Millisecond):
	}
	if n := spy.count(); n != 0 {
		t.Fatalf("%d bulk messages reached the broker while records waited", n)
	}
	r.startIngester("ingest-a")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bulk call: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the bulk call still waiting after the records drained: %+v", r.up.Stats())
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

// TestTakeBulkRateCap: TakeBulk and PublishBulk take from one rate
// bucket of one MaxPayload (4 KiB). Each round takes 5 KiB with TakeBulk
// (more than the bucket: it goes in pieces of 3 KiB and 2 KiB) and
// publishes 1 KiB with PublishBulk. At every return, the bytes taken and
// published so far never exceed the cap times the time since the start
// plus the bucket; the rounds take no less time than the cap demands,
// nor much more (the pieces do not waste the budget); and only the
// published bytes reach the broker.
func TestTakeBulkRateCap(t *testing.T) {
	const rate, payload, take, size, n = 16 << 10, 4 << 10, 5 << 10, 1 << 10, 8 // 48 KiB at 16 KiB/s: 2.75 s beyond the bucket
	r := newRig(t)
	r.startIngester("ingest-a")
	r.startUploader(func(c *edge.Config) { c.MaxBytesPerSecond, c.MaxPayload = rate, payload })
	waitUntil(t, 10*time.Second, "uploader live", func() (bool, string) { return r.up.State() == edge.Live, r.up.State().String() })
	spy := r.spyBulk(nil)
	ctx := context.Background()
	start := time.Now()
	total := 0
	check := func(what string) {
		t.Helper()
		at := time.Since(start)
		if allowed := payload + int(at.Seconds()*rate); total > allowed {
			t.Fatalf("%s: %d bytes taken and published %v after the start; the cap allows %d", what, total, at, allowed)
		}
	}
	for i := range n {
		if err := r.up.TakeBulk(ctx, take); err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
		total += take
		check(fmt.Sprintf("take %d", i))
		if err := r.up.PublishBulk(ctx, bulkTopic, make([]byte, size)); err != nil {
			t.Fatalf("bulk message %d: %v", i, err)
		}
		total += size
		check(fmt.Sprintf("bulk message %d", i))
	}
	took := time.Since(start)
	least := time.Duration(float64(total-payload) / rate * float64(time.Second))
	t.Logf("%d bytes taken and published in %v: %.0f B/s beyond the bucket, cap %d", total, took, float64(total-payload)/took.Seconds(), rate)
	if took < least {
		t.Fatalf("%d bytes in %v: faster than the cap allows (%v)", total, took, least)
	}
	if most := 2*least + time.Second; took > most {
		t.Errorf("%d bytes in %v: much slower than the cap (%v at the cap)", total, took, least)
	}
	waitUntil(t, 5*time.Second, "every bulk message at the spy", func() (bool, string) { return spy.count() == n, "" })
	spy.mu.Lock()
	defer spy.mu.Unlock()
	for i, b := range spy.bytes {
		if b != size {
			t.Errorf("bulk message %d: %d bytes at the broker, want %d (TakeBulk publishes nothing)", i, b, size)
		}
	}
}

// TestTakeBulkRefusals: no bytes, or fewer, are refused; offline it
// waits for ctx; Close ends a waiting TakeBulk with ErrClosed, and a
// later one too.
func TestTakeBulkRefusals(t *testing.T) {
	r := newRig(t)
	r.startUploader()
	ctx := context.Background()
	for _, n := range []int{0, -1} {
		if err := r.up.TakeBulk(ctx, n); err == nil || !strings.Contains(err.Error(), "positive") {
			t.Errorf("TakeBulk(%d): %v, want a refusal", n, err)
		}
	}
	r.broker.Stop()
	waitUntil(t, 10*time.Second, "offline", func() (bool, string) {
		s := r.up.State()
		return s == edge.Offline || s == edge.Connecting, s.String()
	})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := r.up.TakeBulk(short, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("offline: %v, want the ctx's deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.up.TakeBulk(ctx, 1) }()
	select {
	case err := <-done:
		t.Fatalf("offline, TakeBulk returned %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	closeWithin(t, "uploader", r.up.Close)
	select {
	case err := <-done:
		if !errors.Is(err, edge.ErrClosed) {
			t.Errorf("closed while waiting: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("TakeBulk still waiting after Close")
	}
	if err := r.up.TakeBulk(ctx, 1); !errors.Is(err, edge.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}
