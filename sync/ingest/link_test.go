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

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/sink"
)

func encode(t *testing.T, vehicle, stream string, first uint64, n int) []byte {
	t.Helper()
	var recs []batch.Record
	for i := range n {
		recs = append(recs, batch.Record{Seq: first + uint64(i), Kind: storage.KindData, Boot: 1, Payload: []byte(stream + " payload")})
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
	in, err := ingest.New(ingest.Config{Broker: b.URL(), ClientID: "ingest-a", ConnectTimeout: 2 * time.Second, PublishTimeout: 2 * time.Second},
		sk, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	if err != nil {
		t.Fatal(err)
	}
	in.Start()
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
		{"vigil/v1/veh-1/telemetry", storage.StreamLogs, batch.StatusRejected},
		{"vigil/v1/veh-1/logs", storage.StreamEvents, batch.StatusRejected},
		{"vigil/v1/veh-1/logs", storage.StreamLogs, batch.StatusStored},
		{"vigil/v1/veh-1/telemetry", storage.StreamEvents, batch.StatusStored},
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
	if stored[storage.StreamLogs] != 5 || stored[storage.StreamEvents] != 5 || len(stored) != 2 {
		t.Errorf("sink holds %v, want 5 logs and 5 events", stored)
	}
}
