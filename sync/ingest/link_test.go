package ingest_test

import (
	"context"
	"fmt"
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

func encode(t *testing.T, vehicle, stream string, first uint64, n int) []byte {
	t.Helper()
	var recs []batch.Record
	for i := range n {
		recs = append(recs, batch.Record{Seq: first + uint64(i), Kind: record.KindData, Boot: 1, Payload: []byte(stream + " payload")})
	}
	raw, err := batch.Encode(batch.Header{Vehicle: vehicle, Stream: stream, Store: 7, Boot: 1, Compression: batch.Flate}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestStreamCheckedAgainstTopic: a logs batch on the telemetry topic, or
// another stream's batch on the logs topic, is rejected with a reason
// and not stored; the right topics are stored.
func TestStreamCheckedAgainstTopic(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	sk, err := sink.Open(filepath.Join(t.TempDir(), "sink"), sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := startSubscribed(t, ingest.Config{Broker: b.URL(), ClientID: "ingest-a", ConnectTimeout: 2 * time.Second, PublishTimeout: 2 * time.Second},
		sk, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))

	c := b.Client(t, "veh-1", nil)
	var mu sync.Mutex
	var acks []batch.Ack
	if err := mqtttest.Subscribe(c, "vigil/v1/veh-1/ack", func(_ mqtt.Client, m mqtt.Message) {
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
	send := []struct {
		topic, stream string
		want          batch.Status
	}{
		{"vigil/v1/veh-1/telemetry", record.StreamLogs, batch.StatusRejected},
		{"vigil/v1/veh-1/logs", record.StreamEvents, batch.StatusRejected},
		{"vigil/v1/veh-1/logs", record.StreamLogs, batch.StatusStored},
		{"vigil/v1/veh-1/telemetry", record.StreamEvents, batch.StatusStored},
	}
	for _, s := range send {
		if err := mqtttest.Publish(c, s.topic, encode(t, "veh-1", s.stream, 1, 5), false); err != nil {
			t.Fatal(err)
		}
		// One at a time, so that the acks come in order.
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(acks)
			mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ack for %s on %s", s.stream, s.topic)
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		a := acks[0]
		acks = acks[1:]
		mu.Unlock()
		if a.Status != s.want || a.Stream != s.stream || a.FirstSeq != 1 || a.LastSeq != 5 {
			t.Errorf("%s on %s: ack %+v, want %s", s.stream, s.topic, a, s.want)
		}
		if s.want == batch.StatusRejected && !strings.Contains(a.Reason, "topic") {
			t.Errorf("%s on %s: reason %q does not name the topic", s.stream, s.topic, a.Reason)
		}
	}
	st := in.Stats()
	if st.WrongTopic != 2 || st.Rejected != 2 || st.Stored != 2 {
		t.Errorf("stats %+v, want 2 wrong topic, 2 rejected, 2 stored", st)
	}
	rep := sk.Report()
	stored := map[string]uint64{}
	for _, v := range rep.Vehicles {
		for _, s := range v.Streams {
			stored[s.Stream] = s.Records
		}
	}
	if stored[record.StreamLogs] != 5 || stored[record.StreamEvents] != 5 || len(stored) != 2 {
		t.Errorf("sink holds %v, want 5 logs and 5 events", stored)
	}
}

// TestPresenceStatus: a replica keeps a retained online status on
// vigil/v1/fleet/ingest/<replica>/status once subscribed (so a vehicle
// subscribing later reads it), offline when it closes, and offline as
// its last will when its connection dies; a name that is no topic level
// is refused.
func TestPresenceStatus(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	proxy := mqtttest.NewProxy(t, b.Addr())
	sk, err := sink.Open(filepath.Join(t.TempDir(), "sink"), sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	if _, err := ingest.New(ingest.Config{Broker: b.URL(), ClientID: "a/b"}, sk, log); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("a client id with a slash as the replica name: %v", err)
	}
	start := func(url, replica string) *ingest.Ingester {
		in := startSubscribed(t, ingest.Config{Broker: url, ClientID: "client-" + replica, Replica: replica, ConnectTimeout: 2 * time.Second,
			PublishTimeout: 2 * time.Second, KeepAlive: time.Second}, sk, log)
		return in
	}
	// status reads the retained status of replica with a fresh client.
	n := 0
	status := func(replica string) string {
		t.Helper()
		n++
		c := b.Client(t, fmt.Sprintf("reader-%d", n), nil)
		defer c.Disconnect(0)
		got := make(chan string, 1)
		if err := mqtttest.Subscribe(c, presence.IngestStatusTopic(replica), func(_ mqtt.Client, m mqtt.Message) {
			if m.Retained() {
				select {
				case got <- string(m.Payload()):
				default:
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			return s
		case <-time.After(2 * time.Second):
			return "(none)"
		}
	}
	a := start(b.URL(), "replica-a")
	if s := status("replica-a"); s != presence.StatusOnline {
		t.Fatalf("replica-a subscribed: status %q, want online", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := status("replica-a"); s != presence.StatusOffline {
		t.Fatalf("replica-a closed: status %q, want offline", s)
	}
	start(proxy.URL(false), "replica-b")
	if s := status("replica-b"); s != presence.StatusOnline {
		t.Fatalf("replica-b subscribed: status %q, want online", s)
	}
	proxy.Kill() // no DISCONNECT: the broker publishes the will
	deadline := time.Now().Add(10 * time.Second)
	for s := status("replica-b"); s != presence.StatusOffline; s = status("replica-b") {
		if time.Now().After(deadline) {
			t.Fatalf("replica-b's connection died: status %q, want its will, offline", s)
		}
	}
}

// startSubscribed starts an ingester of cfg over sk, closed at the test's
// end, and waits until the broker granted its subscriptions.
func startSubscribed(t *testing.T, cfg ingest.Config, sk *sink.Sink, log *zap.Logger) *ingest.Ingester {
	t.Helper()
	in, err := ingest.New(cfg, sk, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Close(ctx)
	})
	deadline := time.Now().Add(10 * time.Second)
	for !in.Stats().Subscribed {
		if time.Now().After(deadline) {
			t.Fatal("ingester never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return in
}
