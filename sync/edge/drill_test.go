package edge_test

import (
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// statusSpy records the vehicle's status messages (online, offline) as
// the broker delivers them.
type statusSpy struct {
	mu  sync.Mutex
	got []string
}

func spyStatus(t *testing.T, r *rig) *statusSpy {
	t.Helper()
	s := &statusSpy{}
	c := r.broker.Client(t, "status-spy", nil)
	if err := mqtttest.Subscribe(c, edge.StatusTopic(r.vehicle), func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		s.got = append(s.got, string(m.Payload()))
		s.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// since returns the messages from the n-th on.
func (s *statusSpy) since(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got[min(n, len(s.got)):]...)
}

func (s *statusSpy) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// TestDrillHoldDown: a link held down goes offline without a DISCONNECT
// (the broker publishes the will), stays down through reconnect waits and
// SyncNow while records pile up in the store, and drains them exactly once
// on Release.
func TestDrillHoldDown(t *testing.T) {
	r := newRig(t)
	r.startIngester("ingest-a")
	r.startUploader()
	r.appendN(storage.StreamEvents, 20)
	r.waitDrained(5 * time.Second)
	spy := spyStatus(t, r)
	waitUntil(t, 5*time.Second, "the retained online status", func() (bool, string) {
		got := spy.since(0)
		return len(got) > 0 && got[len(got)-1] == edge.StatusOnline, ""
	})
	seen := spy.count()
	connects := r.up.Stats().Connects

	r.up.HoldDown()
	r.up.HoldDown() // held already: nothing more
	waitUntil(t, 5*time.Second, "the link down", func() (bool, string) {
		return r.up.State() == edge.Offline, r.up.State().String()
	})
	waitUntil(t, 5*time.Second, "the broker's will (no DISCONNECT was sent)", func() (bool, string) {
		got := spy.since(seen)
		return len(got) == 1 && got[0] == edge.StatusOffline, ""
	})
	for _, s := range testStreams {
		r.appendN(s, 200)
	}
	r.waitDurable()
	// Many reconnect waits (50–300 ms) and a SyncNow later, still down.
	r.up.SyncNow()
	time.Sleep(700 * time.Millisecond)
	if s, n := r.up.State(), r.up.Stats().Connects; s != edge.Offline || n != connects {
		t.Fatalf("held down: state %s, %d connects (was %d)", s, n, connects)
	}
	if r.cursor(storage.StreamInference) != 0 {
		t.Fatalf("records acknowledged while the link was held down: cursor %d", r.cursor(storage.StreamInference))
	}
	if ok, _ := r.drained(); ok {
		t.Fatal("drained while held down")
	}

	r.up.Release()
	r.up.Release() // not held: nothing
	r.waitDrained(10 * time.Second)
	r.checkExactlyOnce()
	if n := r.up.Stats().Connects; n != connects+1 {
		t.Errorf("%d connects after the release, want %d", n, connects+1)
	}
	if got := spy.since(seen); len(got) < 2 || got[len(got)-1] != edge.StatusOnline {
		t.Errorf("status messages after the hold: %q, want offline then online", got)
	}
}

// TestDrillDropConnection: a dropped connection is lost as when the broker
// crashes — the broker publishes the will, so no DISCONNECT went — and the
// link reconnects on its own and goes on draining.
func TestDrillDropConnection(t *testing.T) {
	r := newRig(t)
	r.startIngester("ingest-a")
	r.startUploader()
	r.appendN(storage.StreamEvents, 20)
	r.waitDrained(5 * time.Second)
	spy := spyStatus(t, r)
	waitUntil(t, 5*time.Second, "the retained online status", func() (bool, string) {
		return spy.count() > 0, ""
	})
	seen := spy.count()
	connects := r.up.Stats().Connects

	if !r.up.DropConnection() {
		t.Fatal("DropConnection: no connection to drop")
	}
	waitUntil(t, 5*time.Second, "the will, then online again", func() (bool, string) {
		got := spy.since(seen)
		return len(got) >= 2 && got[0] == edge.StatusOffline && got[len(got)-1] == edge.StatusOnline, ""
	})
	if n := r.up.Stats().Connects; n != connects+1 {
		t.Errorf("%d connects after the drop, want %d", n, connects+1)
	}
	r.appendN(storage.StreamEvents, 50)
	r.waitDrained(10 * time.Second)
	r.checkExactlyOnce()

	// Held down, there is nothing to drop.
	r.up.HoldDown()
	waitUntil(t, 5*time.Second, "the link down", func() (bool, string) {
		return r.up.State() == edge.Offline, r.up.State().String()
	})
	if r.up.DropConnection() {
		t.Error("DropConnection with the link held down: dropped something")
	}
	r.up.Release()
	r.waitDrained(10 * time.Second)
}

// TestDrillHoldDownTLS: over TLS, HoldDown and Release work the same (the
// uploader opens its TLS connections itself).
func TestDrillHoldDownTLS(t *testing.T) {
	r, pki := tlsRig(t)
	r.startIngester("ingest-a", ingestTLS(pki))
	r.startUploader(withTLS(pki, r.vehicle))
	r.appendN(storage.StreamEvents, 20)
	r.waitDrained(5 * time.Second)
	r.up.HoldDown()
	waitUntil(t, 5*time.Second, "the link down", func() (bool, string) {
		return r.up.State() == edge.Offline, r.up.State().String()
	})
	r.appendN(storage.StreamEvents, 20)
	r.waitDurable()
	time.Sleep(300 * time.Millisecond)
	if r.up.State() != edge.Offline {
		t.Fatalf("held down: %s", r.up.State())
	}
	r.up.Release()
	r.waitDrained(10 * time.Second)
	r.checkExactlyOnce()
}
