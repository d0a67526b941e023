package edge_test

import (
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/presence"
)

// appendRandom appends n records of size incompressible bytes to stream
// and remembers them; it returns the last seq.
func (r *rig) appendRandom(stream string, n, size int) uint64 {
	r.t.Helper()
	st := r.store.Stream(stream)
	var last uint64
	for range n {
		p := make([]byte, size)
		rand.Read(p)
		r.mu.Lock()
		m := r.appended[stream]
		if m == nil {
			m = map[uint64][]byte{}
			r.appended[stream] = m
		}
		seq, ok := st.Append(p)
		if ok {
			m[seq] = p
			last = seq
		}
		r.mu.Unlock()
		if !ok {
			r.t.Fatalf("append to %s refused", stream)
		}
	}
	return last
}

var spies int // client ids of waitRetained's subscribers

// waitRetained waits until topic's retained message on the rig's broker
// is want.
func (r *rig) waitRetained(topic, want string) {
	r.t.Helper()
	got := make(chan string, 16)
	spies++
	c := r.broker.Client(r.t, fmt.Sprintf("retained-spy-%d", spies), nil)
	if err := mqtttest.Subscribe(c, topic, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	}); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p := <-got:
			if p == want {
				return
			}
		case <-deadline:
			r.t.Fatalf("%s never became %q", topic, want)
		}
	}
}

// ackSpy records the acks published for the rig's vehicle.
type ackSpy struct {
	mu   sync.Mutex
	acks []batch.Ack
}

func (r *rig) spyAcks() *ackSpy {
	r.t.Helper()
	s := &ackSpy{}
	c := r.broker.Client(r.t, "ack-spy-"+r.vehicle, nil)
	if err := mqtttest.Subscribe(c, edge.AckTopic(r.vehicle), func(_ mqtt.Client, m mqtt.Message) {
		if a, err := batch.DecodeAck(m.Payload()); err == nil {
			s.mu.Lock()
			s.acks = append(s.acks, a)
			s.mu.Unlock()
		}
	}); err != nil {
		r.t.Fatal(err)
	}
	return s
}

// covered says whether an ack (stored or duplicate) covering seq of
// stream was published.
func (s *ackSpy) covered(stream string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.acks {
		if a.Stream == stream && a.Status != batch.StatusRejected && a.FirstSeq <= seq && seq <= a.LastSeq {
			return true
		}
	}
	return false
}

// TestLiveAheadOfBacklog: after an outage that left a backlog of 512 KiB
// on one stream, drained at 400 KiB/s at most (so the drain takes more
// than a second), records appended during the drain are acknowledged
// while most of the backlog still waits (the first before half of it is
// acknowledged); in the end every record is in
// the cloud exactly once, with no gap, and no batch of the live lane was
// sent again when the backlog reached it (the ingester saw no
// duplicate: the ack timeout is long enough that nothing times out).
//
// Without the cap ("uncapped"), the order is only logged: the backlog
// may drain faster than the test appends; what is checked is the end
// (the cursor moves through live batches the backlog lane adopted with
// nothing else to wake it).
func TestLiveAheadOfBacklog(t *testing.T) {
	t.Run("capped", func(t *testing.T) { testLiveAheadOfBacklog(t, 400<<10) })
	t.Run("uncapped", func(t *testing.T) { testLiveAheadOfBacklog(t, 0) })
}

func testLiveAheadOfBacklog(t *testing.T, rate int) {
	r := newRig(t)
	in := r.startIngester("ingest-a")
	// The uploader connects once the ingester's online status is on the
	// broker, so that it never hears it live (see below).
	r.waitRetained(presence.IngestStatusTopic("ingest-a"), presence.StatusOnline)
	r.startUploader(func(c *edge.Config) {
		c.MaxBytesPerSecond = rate
		c.MaxPayload = 16 << 10
		// Nothing times out: a batch sent twice is the live lane's doing.
		c.AckTimeout, c.AckTimeoutMin = 20*time.Second, 20*time.Second
		// It reconnects when told to (SyncNow), once the ingester is
		// back: nothing is published into the void, so nothing needs
		// to be sent again.
		c.ReconnectMin, c.ReconnectMax = 30*time.Second, 30*time.Second
	})
	r.appendN(storage.StreamEvents, 5)
	r.waitDrained(10 * time.Second)
	before := r.cursor(storage.StreamEvents)

	r.broker.Stop()
	waitUntil(t, 5*time.Second, "uploader offline", func() (bool, string) {
		s := r.up.State()
		return s == edge.Offline, s.String()
	})
	backlogEnd := r.appendRandom(storage.StreamEvents, 2048, 256) // 512 KiB
	r.waitDurable()
	r.broker.Restart()
	waitUntil(t, 10*time.Second, "ingester subscribed", func() (bool, string) { return in.Stats().Subscribed, "" })
	// The vehicle reconnects only once the ingester's online status is on
	// the broker: heard live, it would (rightly) send again what was in
	// flight, and this test counts resends as the live lane's.
	r.waitRetained(presence.IngestStatusTopic("ingest-a"), presence.StatusOnline)
	spy := r.spyAcks() // the broker forgot every session
	r.up.SyncNow()
	waitUntil(t, 10*time.Second, "drain started", func() (bool, string) {
		c := r.cursor(storage.StreamEvents)
		return c > before, fmt.Sprintf("cursor %d", c)
	})

	for i := range 3 {
		seq := r.appendRandom(storage.StreamEvents, 1, 100)
		waitUntil(t, 10*time.Second, fmt.Sprintf("ack of live record %d", seq), func() (bool, string) {
			return spy.covered(storage.StreamEvents, seq), fmt.Sprintf("%+v", r.up.Stats().Streams[0])
		})
		c := r.cursor(storage.StreamEvents)
		t.Logf("live record %d acknowledged with the cursor at %d of a backlog through %d", seq, c, backlogEnd)
		if rate > 0 && i == 0 && c > backlogEnd/2 {
			t.Fatalf("live record %d acknowledged only after the cursor reached %d of %d", seq, c, backlogEnd)
		}
	}
	r.waitDrained(20 * time.Second)
	st := r.up.Stats()
	for _, s := range st.Streams {
		if s.Stream == storage.StreamEvents && (s.LiveSent == 0 || s.Resent != 0) {
			t.Errorf("events: %d batches sent by the live lane (want some), %d resent (want none)", s.LiveSent, s.Resent)
		}
	}
	if is := in.Stats(); is.Duplicate != 0 {
		t.Errorf("%d duplicates: live batches sent again (%+v)", is.Duplicate, is)
	}
	t.Logf("stats %+v", st)
}

// TestBandwidthCap: with MaxBytesPerSecond, publishing N payload bytes
// takes at least (N - one MaxPayload of burst) / rate. Only that lower
// bound is checked. Batches are large (32 KiB), so that without the cap
// the few sink writes (about 13) take far less than the 2.3 s the cap
// imposes.
func TestBandwidthCap(t *testing.T) {
	r := newRig(t)
	const rate = 160 << 10
	const maxPayload = 32 << 10
	r.appendRandom(storage.StreamInference, 1500, 256) // 375 KiB
	r.appendRandom(storage.StreamHealth, 100, 256)
	r.waitDurable()
	r.startIngester("ingest-a")
	start := time.Now()
	r.startUploader(func(c *edge.Config) {
		c.MaxBytesPerSecond = rate
		c.MaxPayload = maxPayload
		c.AckTimeout = 20 * time.Second
	})
	r.waitDrained(30 * time.Second)
	elapsed := time.Since(start)
	var bytes uint64
	for _, s := range r.up.Stats().Streams {
		bytes += s.Bytes
	}
	least := time.Duration(float64(bytes-maxPayload) / rate * float64(time.Second))
	t.Logf("%d payload bytes in %v; at %d B/s at least %v", bytes, elapsed, rate, least)
	if bytes < 400<<10 {
		t.Fatalf("only %d bytes published", bytes)
	}
	if elapsed < least*95/100 {
		t.Fatalf("drained %d bytes in %v, faster than the cap allows (%v)", bytes, elapsed, least)
	}
}
