package console

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/sync/presence"
)

// LiveConfig configures Live.
type LiveConfig struct {
	Broker   string
	ClientID string
	TLS      *tls.Config
	// ReconnectMax is the longest wait between attempts after losing the
	// broker; 0 means 1 s.
	ReconnectMax time.Duration
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
}

// Live is a PresenceSource that stays subscribed to every vehicle's
// status and heartbeat (presence.StatusFilter, presence.HeartbeatFilter)
// for as long as serve runs, reconnecting after a lost broker; it judges
// them with presence.Judge when asked.
type Live struct {
	cfg       LiveConfig
	client    mqtt.Client
	closed    chan struct{}
	closeOnce sync.Once

	mu   sync.Mutex
	seen map[string]*presence.Observation
	up   bool
}

// NewLive prepares a Live; Start connects.
func NewLive(cfg LiveConfig) (*Live, error) {
	if cfg.Broker == "" {
		return nil, errors.New("console: no broker URL")
	}
	if cfg.ClientID == "" {
		return nil, errors.New("console: no MQTT client id")
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Live{cfg: cfg, seen: map[string]*presence.Observation{}, closed: make(chan struct{})}
	opts := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID(cfg.ClientID).
		SetCleanSession(true).SetOrderMatters(false).
		SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(cfg.ReconnectMax).SetMaxReconnectInterval(cfg.ReconnectMax).
		SetConnectTimeout(10 * time.Second).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(func(mqtt.Client, error) { l.setUp(false) })
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	l.client = mqtt.NewClient(opts)
	return l, nil
}

// Start connects (and keeps trying in the background when the broker is
// not there yet: the console shows what it has meanwhile).
func (l *Live) Start(context.Context) error {
	l.client.Connect()
	return nil
}

// Close disconnects.
func (l *Live) Close(context.Context) error {
	l.closeOnce.Do(func() { close(l.closed) })
	l.client.Disconnect(100)
	return nil
}

// Connected says whether the subscriptions stand.
func (l *Live) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

func (l *Live) setUp(up bool) {
	l.mu.Lock()
	l.up = up
	l.mu.Unlock()
}

// onConnect subscribes again on every connection (the session is
// clean); the retained statuses and heartbeats come again with it.
func (l *Live) onConnect(c mqtt.Client) {
	t := c.SubscribeMultiple(map[string]byte{presence.StatusFilter: 1, presence.HeartbeatFilter: 1}, l.onMessage)
	// paho runs this handler on a goroutine of its own: waiting here
	// holds nothing else up, and Close ends the wait.
	select {
	case <-t.Done():
		if t.Error() == nil {
			l.setUp(true)
		}
	case <-l.closed:
	}
}

func (l *Live) onMessage(_ mqtt.Client, m mqtt.Message) {
	at := l.cfg.Now()
	vehicle, kind, ok := presence.ParseVehicleTopic(m.Topic())
	if !ok {
		return
	}
	var hb presence.Heartbeat
	if kind == "heartbeat" {
		var err error
		if hb, err = presence.DecodeHeartbeat(m.Payload()); err != nil || hb.Vehicle != vehicle {
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.seen[vehicle]
	if o == nil {
		o = &presence.Observation{Vehicle: vehicle}
		l.seen[vehicle] = o
	}
	if kind == "heartbeat" {
		if o.Heartbeat != nil && o.Heartbeat.Store == hb.Store && later(*o.Heartbeat, hb) {
			return // a late copy of an older one (a resubscription's retained copy, say)
		}
		o.Heartbeat, o.HeartbeatAt, o.HeartbeatRetained = &hb, at, m.Retained()
		return
	}
	p := m.Payload()
	if len(p) > 64 {
		p = p[:64]
	}
	if m.Retained() && o.Status != "" && !o.StatusRetained {
		// A resubscription's retained copy of what was already seen
		// live: keep the live arrival time.
		if o.Status == string(p) {
			return
		}
	}
	o.Status, o.StatusAt, o.StatusRetained = string(p), at, m.Retained()
}

// later reports whether a is later than b in the vehicle's order.
func later(a, b presence.Heartbeat) bool {
	if a.Boot != b.Boot {
		return a.Boot > b.Boot
	}
	return a.Seq > b.Seq
}

// Vehicles implements PresenceSource.
func (l *Live) Vehicles() []presence.Vehicle {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]presence.Vehicle, 0, len(l.seen))
	for _, o := range l.seen {
		obs := *o
		if o.Heartbeat != nil {
			hb := *o.Heartbeat
			obs.Heartbeat = &hb
		}
		out = append(out, presence.Vehicle{Observation: obs, Verdict: presence.Judge(now, obs)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Observation.Vehicle < out[j].Observation.Vehicle })
	return out
}

// String names the broker for the pages.
func (l *Live) String() string { return fmt.Sprintf("%s (client %s)", l.cfg.Broker, l.cfg.ClientID) }
