package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/agent/drill"
)

// drillTopic is where a vehicle publishes each drill report it finishes
// (QoS 1, not retained): vigil/v1/<vehicle>/drill.
func drillTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/drill" }

// drillWatch collects the drill reports the asked vehicles publish, on a
// connection of its own, subscribed to each one's drill topic before any
// command is sent (the reports are not retained: one published before
// the subscription would be lost). It reconnects by itself and
// subscribes again.
type drillWatch struct {
	client  mqtt.Client
	filters map[string]byte
	topicOf map[string]string // topic → vehicle
	ready   chan error        // the first subscription's outcome
	changed chan struct{}

	mu      sync.Mutex
	reports map[string][]drill.Report // by vehicle, in arrival order
	bad     []string                  // undecodable reports, in words
}

func watchDrills(ctx context.Context, broker string, tlsCfg *tls.Config, clientID string, vehicles []string, timeout time.Duration) (*drillWatch, error) {
	if clientID == "" {
		var b [6]byte
		rand.Read(b[:])
		clientID = "vigil-fleet-drill-" + hex.EncodeToString(b[:])
	}
	w := &drillWatch{filters: map[string]byte{}, topicOf: map[string]string{}, ready: make(chan error, 1),
		changed: make(chan struct{}, 1), reports: map[string][]drill.Report{}}
	for _, v := range vehicles {
		w.filters[drillTopic(v)] = 1
		w.topicOf[drillTopic(v)] = v
	}
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(clientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(timeout).
		SetWriteTimeout(timeout).
		SetOnConnectHandler(w.subscribe)
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	w.client = mqtt.NewClient(opts)
	t := w.client.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		w.close()
		return nil, fmt.Errorf("drill reports: connect to %s: %w", broker, ctx.Err())
	}
	if err := t.Error(); err != nil {
		w.close()
		return nil, fmt.Errorf("drill reports: connect to %s: %w", broker, err)
	}
	var err error
	select {
	case err = <-w.ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		w.close()
		return nil, fmt.Errorf("drill reports: subscribe to vigil/v1/<vehicle>/drill on %s: %w", broker, err)
	}
	return w, nil
}

// subscribe runs on every connection; the first one's outcome goes to
// ready.
func (w *drillWatch) subscribe(c mqtt.Client) {
	t := c.SubscribeMultiple(w.filters, w.onMessage)
	go func() {
		t.Wait()
		err := t.Error()
		if err == nil {
			if st, ok := t.(*mqtt.SubscribeToken); ok {
				for topic, code := range st.Result() {
					if code == 0x80 {
						err = fmt.Errorf("the broker refused %s", topic)
					}
				}
			}
		}
		select {
		case w.ready <- err:
		default:
		}
	}()
}

func (w *drillWatch) onMessage(_ mqtt.Client, m mqtt.Message) {
	v, ok := w.topicOf[m.Topic()]
	if !ok {
		return
	}
	var r drill.Report
	err := json.Unmarshal(m.Payload(), &r)
	w.mu.Lock()
	if err != nil {
		w.bad = append(w.bad, fmt.Sprintf("%s: an undecodable report (%d bytes): %v", v, len(m.Payload()), err))
	} else {
		w.reports[v] = append(w.reports[v], r)
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// take removes and returns what arrived since the last call: the
// reports by vehicle and the undecodable ones.
func (w *drillWatch) take() (map[string][]drill.Report, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	got, bad := w.reports, w.bad
	w.reports, w.bad = map[string][]drill.Report{}, nil
	return got, bad
}

func (w *drillWatch) close() { w.client.Disconnect(250) }
