package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/internal/pahostore"
	"github.com/vigil-av/vigil/sync/presence"
)

// ErrOffline is wrapped by the error of Publish when the link is not up
// (not connected yet, reconnecting, lost before the PUBACK, or closed).
var ErrOffline = errors.New("edge: link offline")

// Uploader drains an outbox to the broker. Start it, then Close it.
type Uploader struct {
	cfg    Config
	clock  clock.Clock
	outbox storage.Outbox
	log    *zap.Logger
	packer batch.Packer
	opts   *mqtt.ClientOptions
	routes []route                     // the ack topic's and Config.Subscriptions' handlers
	client atomic.Pointer[mqtt.Client] // a new one for each connection attempt

	acks      chan batch.Ack
	connected chan struct{} // the OnConnect handler subscribed
	ingestUp  chan struct{} // an ingester replica came online
	beatNow   chan struct{} // a new connection: heartbeat at once
	lost      chan struct{}
	syncPump  chan struct{} // SyncNow, for the drain loop
	syncLink  chan struct{} // SyncNow, for the link loop's backoff
	stop      chan struct{}
	wg        sync.WaitGroup
	life      struct {
		sync.Mutex
		running, closed bool
	}
	closeOnce sync.Once

	online   atomic.Bool
	linkMu   sync.Mutex
	down     chan struct{} // closed when the current connection is lost; nil while offline
	epoch    atomic.Uint64 // connections that subscribed
	state    atomic.Int32
	connects atomic.Uint64
	ignored  atomic.Uint64

	started    time.Time     // the heartbeats' monotonic origin
	beats      atomic.Uint64 // heartbeats published
	ingestOnce atomic.Uint64 // ingesters seen coming online

	rate *bucket // nil: no cap
	bulk bulkGate

	labels *labels // nil when the store was never restored (label.go)

	drill drillLink // the drill hooks' (drill.go)

	pace *pacer // the drain loop's
	rto  *rto   // the drain loop's

	mu      sync.Mutex // guards the stats snapshot below
	streams []StreamStats
	backlog bool
	paced   Stats // InFlightBudget, MinAckRTT, DeliveryRate
}

// New builds an Uploader; it connects nothing until Start.
func New(cfg Config, outbox storage.Outbox, log *zap.Logger) (*Uploader, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if outbox == nil {
		return nil, errors.New("edge: nil outbox")
	}
	if log == nil {
		log = zap.NewNop()
	}
	labels, err := newLabels(cfg.Lineage, outbox)
	if err != nil {
		return nil, err
	}
	u := &Uploader{
		cfg: cfg, clock: clock.Or(cfg.Clock), outbox: outbox, log: log.Named("edge").With(zap.String("vehicle", cfg.Vehicle)),
		acks:      make(chan batch.Ack, 256),
		connected: make(chan struct{}, 1),
		ingestUp:  make(chan struct{}, 1),
		beatNow:   make(chan struct{}, 1),
		lost:      make(chan struct{}, 1),
		syncPump:  make(chan struct{}, 1),
		syncLink:  make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	if cfg.MaxBytesPerSecond > 0 {
		u.rate = newBucket(cfg.MaxBytesPerSecond, cfg.MaxPayload, u.clock.Now())
	}
	u.labels = labels
	u.pace = newPacer(cfg.MaxPayload, cfg.Window)
	u.rto = newRTO(cfg.AckTimeoutMin, cfg.AckTimeout)
	// Batches carry the store's incarnation id, so that the cloud tells a
	// fresh store's records from an earlier one's with the same seqs.
	u.packer = batch.Packer{Vehicle: cfg.Vehicle, Store: outbox.StoreID(), Boot: cfg.Boot, Compression: batch.Flate, MaxPayload: cfg.MaxPayload}
	if cfg.UseNone {
		u.packer.Compression = batch.None
	}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetStore(pahostore.Null{}).
		SetOrderMatters(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(min(cfg.KeepAlive, 10*time.Second)).
		SetWriteTimeout(cfg.ConnectTimeout).
		SetWill(StatusTopic(cfg.Vehicle), StatusOffline, 1, true).
		SetOnConnectHandler(u.onConnect).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			// Acknowledged on return, so it holds no in-flight slot.
			u.log.Debug("message on an unexpected topic", zap.String("topic", m.Topic()))
		}).
		SetConnectionLostHandler(func(c mqtt.Client, _ error) {
			if c == u.cli() { // not a late word from an earlier client
				u.signalLost()
			}
		})
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	u.ownDial(opts, cfg.Broker)
	u.opts = opts
	u.routes = []route{{AckTopic(cfg.Vehicle), 1, u.onAck}, {presence.IngestStatusFilter, 0, u.onIngestStatus}}
	for _, sub := range cfg.Subscriptions {
		h := sub.Handler
		u.routes = append(u.routes, route{sub.Topic, 1, func(_ mqtt.Client, m mqtt.Message) { h(m.Topic(), m.Payload()) }})
	}
	c := mqtt.NewClient(opts)
	u.client.Store(&c)
	return u, nil
}

// Start starts the connection loop, the drain loop and the heartbeat
// loop, which run until Close (ctx bounds the start only). An uploader
// starts once, and not after Close.
func (u *Uploader) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("edge: start: %w", err)
	}
	u.life.Lock()
	defer u.life.Unlock()
	switch {
	case u.life.closed:
		return errors.New("edge: start after Close")
	case u.life.running:
		return errors.New("edge: already started")
	}
	u.life.running = true
	u.started = u.clock.Now()
	beat := u.clock.NewTicker(u.cfg.HeartbeatInterval)
	u.wg.Add(3)
	go u.linkLoop()
	go u.pump()
	go u.heartbeatLoop(beat)
	return nil
}

// Close stops both loops, publishes the retained offline status when
// connected, and disconnects. What is not acknowledged stays in the
// outbox for the next run.
func (u *Uploader) Close(ctx context.Context) error {
	var err error
	u.closeOnce.Do(func() {
		u.life.Lock()
		u.life.closed = true // no Start from now on: wg is waited for
		u.life.Unlock()
		close(u.stop)
		done := make(chan struct{})
		go func() { u.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("edge: close: %w", ctx.Err())
		}
		c := u.cli()
		if c.IsConnectionOpen() {
			t := c.Publish(StatusTopic(u.cfg.Vehicle), 1, true, StatusOffline)
			t.WaitTimeout(time.Second)
		}
		c.Disconnect(250)
		u.setDown()
		u.state.Store(int32(Offline))
	})
	return err
}

// Publish publishes payload on topic at QoS 1 over the uploader's
// connection and waits up to timeout for the broker's PUBACK. It is for
// the daemon and the command channel (responses, status); telemetry goes
// through the outbox. When the link is not up, or the connection is
// lost before the PUBACK, the error wraps ErrOffline; nothing is queued
// for later. A PUBACK says the broker has the message, not that anyone
// read it.
func (u *Uploader) Publish(topic string, payload []byte, retained bool, timeout time.Duration) error {
	if topic == "" || strings.ContainsAny(topic, "+#\x00") {
		// Mosquitto drops a client that publishes to a wildcard.
		return fmt.Errorf("edge: publish: bad topic %q", topic)
	}
	if timeout <= 0 {
		return fmt.Errorf("edge: publish %s: no time to wait for the PUBACK", topic)
	}
	u.linkMu.Lock()
	down := u.down
	u.linkMu.Unlock()
	if down == nil || u.stopped() {
		return fmt.Errorf("edge: publish %s: %w", topic, ErrOffline)
	}
	if u.rate != nil {
		u.rate.force(len(payload), u.clock.Now())
	}
	t := u.cli().Publish(topic, 1, retained, payload)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			if errors.Is(err, mqtt.ErrNotConnected) {
				return fmt.Errorf("edge: publish %s: %w", topic, ErrOffline)
			}
			return fmt.Errorf("edge: publish %s: %w", topic, err)
		}
		return nil
	case <-down:
		// With a persistent session paho never completes the token of a
		// publish cut off by a lost connection.
		return fmt.Errorf("edge: publish %s: connection lost before the PUBACK: %w", topic, ErrOffline)
	case <-u.stop:
		return fmt.Errorf("edge: publish %s: closing: %w", topic, ErrOffline)
	case <-timer.C:
		return fmt.Errorf("edge: publish %s: no PUBACK within %v", topic, timeout)
	}
}

// SyncNow asks for a sync now: the drain loop wakes and sends again
// every batch in flight without waiting for its ack timeout, and when
// the link is down and waiting to reconnect, the wait is cut short. It
// does not block.
func (u *Uploader) SyncNow() {
	select {
	case u.syncPump <- struct{}{}:
	default:
	}
	select {
	case u.syncLink <- struct{}{}:
	default:
	}
}

// State returns the link's state.
func (u *Uploader) State() State {
	s := State(u.state.Load())
	if s != Connecting && s != Offline {
		if !u.online.Load() {
			// Connected, but the subscriptions are not renewed yet:
			// nothing is sent, and Publish refuses.
			return Connecting
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.backlog {
			return Draining
		}
		return Live
	}
	return s
}

// Stats returns the uploader's figures.
func (u *Uploader) Stats() Stats {
	s := Stats{State: u.State(), Connects: u.connects.Load(), AcksIgnore: u.ignored.Load()}
	s.IngesterOnline, s.Heartbeats = u.ingestOnce.Load(), u.beats.Load()
	u.mu.Lock()
	s.Streams = append([]StreamStats(nil), u.streams...)
	s.InFlightBudget, s.MinAckRTT, s.DeliveryRate = u.paced.InFlightBudget, u.paced.MinAckRTT, u.paced.DeliveryRate
	s.AckTimeout, s.SmoothedAckRTT = u.paced.AckTimeout, u.paced.SmoothedAckRTT
	u.mu.Unlock()
	return s
}
