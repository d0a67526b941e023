package presence

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/internal/pahostore"
)

// WatchConfig configures Watch.
type WatchConfig struct {
	// Broker is the broker URL: tcp://host:1883, or ssl://host:8883.
	Broker string
	// ClientID is the MQTT client id; empty means vigil-presence-<random>.
	// The session is clean.
	ClientID string
	// TLS, when set, secures the connection, with the operator's client
	// certificate for mutual TLS.
	TLS *tls.Config
	// ConnectTimeout bounds the connection and the subscription; 0 means
	// 10 s.
	ConnectTimeout time.Duration
	// Clock stamps arrivals and judges; nil means the system clock.
	Clock clock.Clock
}

// Vehicle is one vehicle as a Watcher saw it, and what that means.
type Vehicle struct {
	Observation
	Verdict
}

// Watcher collects every vehicle's status and heartbeat on a connection
// of its own.
type Watcher struct {
	cfg    WatchConfig
	client mqtt.Client

	mu           sync.Mutex
	seen         map[string]*Observation
	subscribedAt time.Time
}

// Watch connects to the broker and subscribes to StatusFilter and
// HeartbeatFilter; the retained messages arrive at once. Close it.
func Watch(ctx context.Context, cfg WatchConfig) (*Watcher, error) {
	if cfg.Broker == "" {
		return nil, errors.New("presence: no broker URL")
	}
	if cfg.ClientID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.ClientID = "vigil-presence-" + hex.EncodeToString(b[:])
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	cfg.Clock = clock.Or(cfg.Clock)
	w := &Watcher{cfg: cfg, seen: map[string]*Observation{}}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(true).
		SetStore(pahostore.Null{}).
		SetOrderMatters(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(cfg.ConnectTimeout)
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	w.client = mqtt.NewClient(opts)
	t := w.client.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		w.client.Disconnect(0)
		return nil, fmt.Errorf("presence: connect to %s: %w", cfg.Broker, ctx.Err())
	}
	if err := t.Error(); err != nil {
		return nil, fmt.Errorf("presence: connect to %s: %w", cfg.Broker, err)
	}
	w.mu.Lock()
	w.subscribedAt = cfg.Clock.Now()
	w.mu.Unlock()
	if err := mqttsub.Subscribe(w.client, map[string]byte{StatusFilter: 1, HeartbeatFilter: 1}, w.onMessage, cfg.ConnectTimeout); err != nil {
		w.client.Disconnect(0)
		return nil, fmt.Errorf("presence: %w", err)
	}
	return w, nil
}

// Close disconnects, giving the broker up to 100 ms (less if ctx ends
// sooner) to take the DISCONNECT.
func (w *Watcher) Close(ctx context.Context) error {
	quiesce := 100 * time.Millisecond
	if dl, ok := ctx.Deadline(); ok {
		quiesce = max(0, min(quiesce, time.Until(dl)))
	}
	w.client.Disconnect(uint(quiesce.Milliseconds()))
	return nil
}

func (w *Watcher) onMessage(_ mqtt.Client, m mqtt.Message) {
	at := w.cfg.Clock.Now()
	vehicle, kind, ok := ParseVehicleTopic(m.Topic())
	if !ok {
		return
	}
	var hb Heartbeat
	if kind == "heartbeat" {
		var err error
		if hb, err = DecodeHeartbeat(m.Payload()); err != nil || hb.Vehicle != vehicle {
			return
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.seen[vehicle]
	if o == nil {
		o = &Observation{Vehicle: vehicle}
		w.seen[vehicle] = o
	}
	if kind == "heartbeat" {
		if o.Heartbeat != nil && !m.Retained() && !o.HeartbeatRetained && newer(*o.Heartbeat, hb) {
			return // a late copy of an older one
		}
		o.Heartbeat, o.HeartbeatAt, o.HeartbeatRetained = &hb, at, m.Retained()
		return
	}
	p := m.Payload()
	if len(p) > 64 {
		p = p[:64]
	}
	o.Status, o.StatusAt, o.StatusRetained = string(p), at, m.Retained()
}

// newer reports whether a is later than b in the vehicle's own order.
func newer(a, b Heartbeat) bool {
	if a.Boot != b.Boot {
		return a.Boot > b.Boot
	}
	return a.Seq > b.Seq
}

// Vehicles returns every vehicle with a status or a heartbeat, sorted by
// id and judged now. Retained messages come right after the subscription,
// but MQTT 3.1.1 marks no end to them: it returns once wait has passed
// since the subscription, or when ctx ends, with ctx's error.
func (w *Watcher) Vehicles(ctx context.Context, wait time.Duration) ([]Vehicle, error) {
	w.mu.Lock()
	at := w.subscribedAt
	w.mu.Unlock()
	var err error
	if d := at.Add(wait).Sub(w.cfg.Clock.Now()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			err = ctx.Err()
		}
	}
	now := w.cfg.Clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Vehicle, 0, len(w.seen))
	for _, o := range w.seen {
		obs := *o
		if o.Heartbeat != nil {
			hb := *o.Heartbeat
			obs.Heartbeat = &hb
		}
		out = append(out, Vehicle{Observation: obs, Verdict: Judge(now, obs)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Observation.Vehicle < out[j].Observation.Vehicle })
	return out, err
}

// OnlineOf returns the ids of the vehicles judged online.
func OnlineOf(vs []Vehicle) []string {
	var out []string
	for _, v := range vs {
		if v.State == Online {
			out = append(out, v.Observation.Vehicle)
		}
	}
	return out
}
