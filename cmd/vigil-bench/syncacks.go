package main

import (
	"fmt"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
)

// ackWatcher subscribes to a vehicle's ack topic, as the uploader does,
// and notes when the ingester acknowledged each range of one stream:
// live records are timed to it as well as to the outbox cursor, since an
// uploader that sends live records ahead of the backlog gets them stored
// in the cloud long before the cursor, which moves through the backlog
// in order, covers them. It runs in the cloud side's process (its
// decoding of every ack is not the vehicle's work), which hands its
// notes to the bench process (ackLatencies compares them with the
// appends' wall-clock times: both processes read the same clock).
type ackWatcher struct {
	client mqtt.Client
	mu     sync.Mutex
	acks   []ackAt
}

// ackAt is an ack's range and when it arrived, in Unix nanoseconds.
type ackAt struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
	At    int64  `json:"at"`
}

func watchAcks(brokerURL, vehicle, stream string, storeID uint64) (*ackWatcher, error) {
	w := &ackWatcher{}
	w.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).
		SetClientID("vigil-bench-acks-" + vehicle).SetCleanSession(true).SetAutoReconnect(false))
	if t := w.client.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("ack watcher connect: %v", tokenErr(t))
	}
	t := w.client.Subscribe(edge.AckTopic(vehicle), 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now().UnixNano()
		a, err := batch.DecodeAck(m.Payload())
		if err != nil || a.Stream != stream || a.Store != storeID || a.Status == batch.StatusRejected {
			return
		}
		w.mu.Lock()
		w.acks = append(w.acks, ackAt{a.FirstSeq, a.LastSeq, at})
		w.mu.Unlock()
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		w.client.Disconnect(0)
		return nil, fmt.Errorf("ack watcher subscribe: %v", tokenErr(t))
	}
	return w, nil
}

func (w *ackWatcher) close() { w.client.Disconnect(100) }

// seen is a copy of the acks noted so far.
func (w *ackWatcher) seen() []ackAt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ackAt(nil), w.acks...)
}

// ackLatencies times each record from its append to the first ack
// covering it; records no ack covered are left out and counted.
func ackLatencies(acks []ackAt, recs []liveRecord) ([]time.Duration, int) {
	var out []time.Duration
	missed := 0
	for _, r := range recs {
		first := int64(-1)
		for _, a := range acks {
			if a.First <= r.seq && r.seq <= a.Last && (first < 0 || a.At < first) {
				first = a.At
			}
		}
		if first < 0 {
			missed++
			continue
		}
		out = append(out, time.Duration(first-r.at.UnixNano()))
	}
	return out, missed
}
