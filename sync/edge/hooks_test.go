package edge_test

import (
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

// inbox collects the messages a handler gets.
type inbox struct {
	mu   sync.Mutex
	msgs []string // topic + " " + payload
}

func (b *inbox) add(topic string, payload []byte) {
	b.mu.Lock()
	b.msgs = append(b.msgs, topic+" "+string(payload))
	b.mu.Unlock()
}

func (b *inbox) reset() {
	b.mu.Lock()
	b.msgs = nil
	b.mu.Unlock()
}

func (b *inbox) handler(_ mqtt.Client, m mqtt.Message) { b.add(m.Topic(), m.Payload()) }

func (b *inbox) has(msg string) func() (bool, string) {
	return func() (bool, string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, m := range b.msgs {
			if m == msg {
				return true, ""
			}
		}
		return false, strings.Join(b.msgs, "; ")
	}
}

func waitLive(t *testing.T, up *edge.Uploader) {
	t.Helper()
	waitUntil(t, 10*time.Second, "uploader connected", func() (bool, string) {
		s := up.State()
		return s == edge.Live || s == edge.Draining, s.String()
	})
}

// TestSubscriptionsAndPublish: Config.Subscriptions are delivered to
// their handlers, also after a broker restart that lost the session
// (they are subscribed on every connection); Publish reaches a
// subscriber and waits for the PUBACK, and says ErrOffline when the link
// is down.
func TestSubscriptionsAndPublish(t *testing.T) {
	r := newRig(t)
	var got inbox
	cmdTopic := "vigil/v1/" + vehicle + "/cmd"
	resTopic := "vigil/v1/" + vehicle + "/cmd/res"
	r.startUploader(func(c *edge.Config) {
		c.Subscriptions = []edge.Subscription{
			{Topic: cmdTopic, Handler: got.add},
			{Topic: "vigil/v1/fleet/cmd", Handler: got.add},
		}
	})
	waitLive(t, r.up)

	var res inbox
	op := r.broker.Client(t, "operator", nil)
	if err := mqtttest.Subscribe(op, resTopic, res.handler); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		if err := mqtttest.Publish(op, cmdTopic, []byte("reboot"), false); err != nil {
			t.Fatal(err)
		}
		if err := mqtttest.Publish(op, "vigil/v1/fleet/cmd", []byte("all"), false); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "command delivered", got.has(cmdTopic+" reboot"))
		waitUntil(t, 5*time.Second, "fleet command delivered", got.has("vigil/v1/fleet/cmd all"))
		if err := r.up.Publish(resTopic, []byte("done"), false, 5*time.Second); err != nil {
			t.Fatalf("round %d: Publish: %v", round, err)
		}
		waitUntil(t, 5*time.Second, "response delivered", res.has(resTopic+" done"))
		if round == 1 {
			break
		}
		// A broker without persistence forgets every session: only a
		// re-subscription on the new connection brings commands again.
		r.broker.Stop()
		waitUntil(t, 5*time.Second, "uploader offline", func() (bool, string) {
			s := r.up.State()
			return s == edge.Offline || s == edge.Connecting, s.String()
		})
		err := r.up.Publish(resTopic, []byte("lost"), false, time.Second)
		if !errors.Is(err, edge.ErrOffline) {
			t.Fatalf("Publish with the broker down: %v, want ErrOffline", err)
		}
		r.broker.Restart()
		waitLive(t, r.up)
		got.reset()
		res.reset()
		op = r.broker.Client(t, "operator-2", nil)
		if err := mqtttest.Subscribe(op, resTopic, res.handler); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.up.Publish("vigil/v1/+/cmd", []byte("x"), false, time.Second); err == nil || errors.Is(err, edge.ErrOffline) {
		t.Fatalf("Publish to a wildcard: %v, want a topic error", err)
	}
	if got := r.up.Stats().Connects; got < 2 {
		t.Fatalf("%d connections, want 2", got)
	}
}

// TestPublishAfterClose: a closed uploader refuses with ErrOffline.
func TestPublishAfterClose(t *testing.T) {
	r := newRig(t)
	r.startUploader()
	waitLive(t, r.up)
	if err := r.up.Publish("vigil/v1/"+vehicle+"/cmd/res", []byte("x"), false, 5*time.Second); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	closeWithin(t, "uploader", r.up.Close)
	if err := r.up.Publish("vigil/v1/"+vehicle+"/cmd/res", []byte("x"), false, time.Second); !errors.Is(err, edge.ErrOffline) {
		t.Fatalf("Publish after Close: %v, want ErrOffline", err)
	}
}

// TestSyncNowCutsBackoff: with a reconnect backoff of at least 15 s,
// SyncNow reconnects as soon as the broker is back.
func TestSyncNowCutsBackoff(t *testing.T) {
	r := newRig(t)
	r.startUploader(func(c *edge.Config) {
		c.ReconnectMin, c.ReconnectMax = 30*time.Second, 30*time.Second
	})
	waitLive(t, r.up)
	r.broker.Stop()
	waitUntil(t, 10*time.Second, "uploader offline", func() (bool, string) {
		s := r.up.State()
		return s == edge.Offline, s.String()
	})
	r.broker.Restart()
	time.Sleep(200 * time.Millisecond) // it is waiting out its backoff (15 to 30 s)
	if s := r.up.State(); s == edge.Live || s == edge.Draining {
		t.Fatalf("reconnected before SyncNow: %v", s)
	}
	start := time.Now()
	r.up.SyncNow()
	waitUntil(t, 10*time.Second, "reconnection after SyncNow", func() (bool, string) {
		s := r.up.State()
		return s == edge.Live || s == edge.Draining, s.String()
	})
	t.Logf("reconnected %v after SyncNow", time.Since(start))
	if c := r.up.Stats().Connects; c != 2 {
		t.Fatalf("%d connections, want 2", c)
	}
}

// TestSyncNowResendsInFlight: with an ack timeout of an hour and no
// ingester, only SyncNow sends the window again (a bare subscriber sees
// each batch twice).
func TestSyncNowResendsInFlight(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	sends := map[string]int{}
	spy := r.broker.Client(t, "spy", nil)
	if err := mqtttest.Subscribe(spy, edge.TelemetryTopic(vehicle), func(_ mqtt.Client, m mqtt.Message) {
		if h, _, err := batch.Decode(m.Payload()); err == nil {
			mu.Lock()
			sends[fmt.Sprintf("%s %d-%d", h.Stream, h.FirstSeq, h.LastSeq)]++
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	count := func(min int) func() (bool, string) {
		return func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			for _, n := range sends {
				if n < min {
					return false, fmt.Sprint(sends)
				}
			}
			return len(sends) > 0, fmt.Sprint(sends)
		}
	}
	r.appendN(storage.StreamEvents, 200)
	r.waitDurable()
	r.startUploader(func(c *edge.Config) { c.AckTimeout, c.AckTimeoutMin = time.Hour, time.Hour })
	waitUntil(t, 10*time.Second, "window sent", count(1))
	time.Sleep(300 * time.Millisecond)
	if ok, got := count(2)(); ok {
		t.Fatalf("sent again before SyncNow: %s", got)
	}
	r.up.SyncNow()
	waitUntil(t, 10*time.Second, "window sent again", count(2))
}

// TestIngesterOnlineResendsInFlight: batches published while no
// ingester listened are lost; with an ack timeout of an hour, what sends
// them again is the ingester's online status.
func TestIngesterOnlineResendsInFlight(t *testing.T) {
	r := newRig(t)
	r.appendN(storage.StreamEvents, 200)
	r.waitDurable()
	r.startUploader(func(c *edge.Config) { c.AckTimeout, c.AckTimeoutMin = time.Hour, time.Hour })
	waitUntil(t, 10*time.Second, "window sent", func() (bool, string) {
		for _, s := range r.up.Stats().Streams {
			if s.Stream == storage.StreamEvents {
				return s.InFlight > 0, ""
			}
		}
		return false, "no events stream"
	})
	time.Sleep(200 * time.Millisecond)
	if c := r.cursor(storage.StreamEvents); c != 0 {
		t.Fatalf("cursor %d with no ingester", c)
	}
	r.startIngester("ingest-a")
	r.waitDrained(10 * time.Second)
	st := r.up.Stats()
	if st.IngesterOnline == 0 {
		t.Errorf("drained without hearing the ingester come online: %+v", st)
	}
	for _, s := range st.Streams {
		if s.Stream == storage.StreamEvents && s.Resent == 0 {
			t.Fatalf("nothing resent: %+v", s)
		}
	}
}

// TestLogsOnTheirOwnTopic: the logs stream goes on .../logs, every other
// on .../telemetry; the ingester takes both.
func TestLogsOnTheirOwnTopic(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	seen := map[string]map[string]int{} // topic -> stream -> batches
	spy := r.broker.Client(t, "spy", nil)
	if err := mqtttest.Subscribe(spy, "vigil/v1/"+vehicle+"/+", func(_ mqtt.Client, m mqtt.Message) {
		h, _, err := batch.Decode(m.Payload())
		if err != nil {
			return // acks, status
		}
		mu.Lock()
		if seen[m.Topic()] == nil {
			seen[m.Topic()] = map[string]int{}
		}
		seen[m.Topic()][h.Stream]++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	r.appendN(storage.StreamLogs, 300)
	r.appendN(storage.StreamEvents, 300)
	r.startIngester("ingest-a")
	r.startUploader()
	r.waitDrained(10 * time.Second)
	time.Sleep(100 * time.Millisecond) // the spy's last messages
	mu.Lock()
	defer mu.Unlock()
	if n := seen[edge.LogsTopic(vehicle)][storage.StreamLogs]; n == 0 {
		t.Errorf("no logs batch on %s: %v", edge.LogsTopic(vehicle), seen)
	}
	if n := seen[edge.TelemetryTopic(vehicle)][storage.StreamEvents]; n == 0 {
		t.Errorf("no events batch on %s: %v", edge.TelemetryTopic(vehicle), seen)
	}
	if len(seen[edge.LogsTopic(vehicle)]) != 1 || seen[edge.TelemetryTopic(vehicle)][storage.StreamLogs] != 0 {
		t.Errorf("streams on the wrong topic: %v", seen)
	}
}
