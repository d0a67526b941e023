// Package edge is the vehicle side of the MQTT link: the uploader that
// drains the storage outbox to the broker in batches and moves the
// outbox cursor only on the ingester's application-level
// acknowledgements.
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/internal/pahostore"
	"github.com/vigil-av/vigil/sync/presence"
)

// DefaultWindow is Config.Window's default: the most batches in flight
// per stream. Fewer are, unless the link needs them (see Config.Window).
const DefaultWindow = 16

// Config configures an Uploader.
type Config struct {
	// Broker is the broker URL, e.g. tcp://broker:1883.
	Broker string
	// Vehicle is the vehicle id: a topic level and the batches' vehicle.
	Vehicle string
	// ClientID is the fixed MQTT client id; empty means "vigil-edge-" +
	// Vehicle. The session is persistent (CleanSession false), so the
	// broker keeps acks for the uploader while it is away.
	ClientID string
	// Boot is the uploading store's boot, carried in batch headers.
	Boot uint32
	// MaxPayload bounds an encoded batch; 0 means batch.DefaultMaxPayload
	// (128 KiB).
	MaxPayload int
	// UseNone sends batch bodies uncompressed; by default they are
	// flate-compressed (when that shrinks them).
	UseNone bool
	// Window is the most unacknowledged batches each stream may have in
	// flight; 0 means DefaultWindow (16). Within it, the backlogs of all
	// streams share a budget of payload bytes in flight sized from the
	// link's measured ack round trip and delivery rate, from 2 batches of
	// MaxPayload (or Window, if less) up to Window of them: a fast link
	// with a long round trip gets the batches it needs to stay busy, and
	// a slow one does not queue batches ahead of live records. While a
	// stream drains a backlog that was there when the link came up,
	// LiveWindow batches are kept for its live lane (records appended
	// since), outside the budget, the rest for the backlog.
	Window int
	// LiveWindow is the part of Window reserved for the live lane; 0
	// means a quarter of Window, at least 1 (4 by default: on vigil-bench
	// sync's emulated 20 Mbit/s uplink, a live p99 of 118 ms, against 150
	// with 2 and 230 with 1, where a record waits for the live batch
	// before it). Negative, or a Window of 1, turns the live lane off:
	// records then wait behind the backlog.
	LiveWindow int
	// MaxBytesPerSecond caps the published payload bytes (a token bucket
	// holding up to one MaxPayload); 0 means no cap. Batches wait for
	// their bytes, live lanes first; Publish's messages are counted but
	// never wait.
	MaxBytesPerSecond int
	// AckTimeout caps how long a batch waits for its ack before it is
	// sent again; 0 means 10 s. The wait follows the link's measured ack
	// round trip (smoothed round trip plus four times its variation, as
	// TCP's retransmission timeout, RFC 6298: see rto.go), from
	// AckTimeoutMin up to AckTimeout, 1 s before the first ack, and
	// doubles while nothing is acknowledged.
	AckTimeout time.Duration
	// AckTimeoutMin is the floor of that wait; 0 means 500 ms (or
	// AckTimeout, if less). Below it, the jitter of an ingester's writes
	// (fsyncs stalling on a busy disk) makes resends (harmless, but
	// duplicates on the vehicle's uplink) common: with 250 ms a test
	// under the race detector on a loaded 2-core machine saw them.
	AckTimeoutMin time.Duration
	// RejectBackoffMax caps the wait before a batch the ingester rejected
	// is sent again: AckTimeout doubled with each rejection of it, up to
	// this; 0 means 10 minutes. A rejection is the cloud refusing the
	// batch (a misconfigured ingester, a vehicle unknown to it): sending
	// it at the normal pace would only flood the link and the logs.
	RejectBackoffMax time.Duration
	// HeartbeatInterval is how often the uploader publishes the
	// vehicle's heartbeat (retained, on vigil/v1/<vehicle>/heartbeat; see
	// sync/presence) while connected, besides one at each connection; 0
	// means presence.DefaultInterval (10 s). The cloud calls a vehicle
	// stale once its last heartbeat is older than
	// presence.StaleIntervals (3) intervals, whatever its retained
	// status says.
	HeartbeatInterval time.Duration
	// ReconnectMin and ReconnectMax bound the exponential reconnect
	// backoff (each wait is jittered to between half and all of the
	// current step); 0 means 500 ms and 60 s.
	ReconnectMin, ReconnectMax time.Duration
	// ConnectTimeout bounds a connection attempt; 0 means 10 s.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration
	// TLS, when set, secures the connection (use an ssl:// or tls://
	// broker URL); give it the vehicle's client certificate for mutual
	// TLS. Nil means plain TCP.
	TLS *tls.Config
	// Subscriptions are subscribed at QoS 1 on every connection, after
	// the ack topic and before the online status; a refused or failed
	// subscription drops the connection, which is retried like any
	// other. See Subscription for what a handler may do.
	Subscriptions []Subscription
}

// Subscription is a topic filter the uploader's connection subscribes to
// for someone else (the command channel), with its handler.
//
// Handler is called on a goroutine of paho's, one per message, so calls
// may run concurrently and in no guaranteed order; the message is
// acknowledged to the broker (QoS 1) when Handler returns. Handler must
// not block: a slow one holds one of the session's in-flight slots and,
// while it waits on the uploader (Publish), the link. Hand the work to
// a goroutine of your own and return.
type Subscription struct {
	Topic   string
	Handler func(topic string, payload []byte)
}

// ErrOffline is wrapped by the error of Publish when the link is not up
// (not connected yet, reconnecting, lost before the PUBACK, or closed).
var ErrOffline = errors.New("edge: link offline")

func (c *Config) defaults() error {
	if _, err := url.Parse(c.Broker); err != nil || c.Broker == "" {
		return fmt.Errorf("edge: bad broker URL %q", c.Broker)
	}
	if !batch.ValidName(c.Vehicle) {
		return fmt.Errorf("edge: bad vehicle id %q", c.Vehicle)
	}
	if c.ClientID == "" {
		c.ClientID = "vigil-edge-" + c.Vehicle
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = batch.DefaultMaxPayload
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	switch {
	case c.LiveWindow < 0 || c.Window < 2:
		c.LiveWindow = 0
	case c.LiveWindow == 0:
		c.LiveWindow = max(1, c.Window/4)
	case c.LiveWindow >= c.Window:
		c.LiveWindow = c.Window - 1
	}
	if c.MaxBytesPerSecond < 0 {
		return fmt.Errorf("edge: negative MaxBytesPerSecond %d", c.MaxBytesPerSecond)
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.AckTimeoutMin <= 0 {
		c.AckTimeoutMin = 500 * time.Millisecond
	}
	c.AckTimeoutMin = min(c.AckTimeoutMin, c.AckTimeout)
	if c.HeartbeatInterval < 0 || (c.HeartbeatInterval > 0 && c.HeartbeatInterval < 10*time.Millisecond) {
		return fmt.Errorf("edge: HeartbeatInterval %v: want 0 (the default) or at least 10ms", c.HeartbeatInterval)
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = presence.DefaultInterval
	}
	if c.RejectBackoffMax <= 0 {
		c.RejectBackoffMax = 10 * time.Minute
	}
	c.RejectBackoffMax = max(c.RejectBackoffMax, c.AckTimeout)
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 500 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = time.Minute
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	for i, sub := range c.Subscriptions {
		if sub.Topic == "" || sub.Handler == nil || strings.ContainsRune(sub.Topic, 0) {
			return fmt.Errorf("edge: subscription %d: empty topic or nil handler", i)
		}
	}
	return nil
}

// Topics of one vehicle.
func TelemetryTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/telemetry" }
func LogsTopic(vehicle string) string      { return "vigil/v1/" + vehicle + "/logs" }
func AckTopic(vehicle string) string       { return "vigil/v1/" + vehicle + "/ack" }
func StatusTopic(vehicle string) string    { return "vigil/v1/" + vehicle + "/status" }
func HeartbeatTopic(vehicle string) string { return presence.HeartbeatTopic(vehicle) }

// StreamTopic is the topic the batches of stream go on: the logs stream
// (storage.StreamLogs) on the logs topic, every other on telemetry.
func StreamTopic(vehicle, stream string) string {
	if stream == storage.StreamLogs {
		return LogsTopic(vehicle)
	}
	return TelemetryTopic(vehicle)
}

// Status payloads, retained on the status topic.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// State is the link's state.
type State int

const (
	// Offline: not connected (waiting to reconnect, or closed).
	Offline State = iota
	// Connecting: a connection attempt is in progress, or the connection
	// is up and its subscriptions are being renewed.
	Connecting
	// Draining: connected, with records not yet acknowledged.
	Draining
	// Live: connected and every durable record acknowledged.
	Live
)

func (s State) String() string {
	switch s {
	case Offline:
		return "offline"
	case Connecting:
		return "connecting"
	case Draining:
		return "draining"
	case Live:
		return "live"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// StreamStats is one stream's figures.
type StreamStats struct {
	Stream   string
	Cursor   uint64 // acknowledged through
	InFlight int    // batches sent and not yet acknowledged
	Sent     uint64 // batches sent the first time
	LiveSent uint64 // of Sent, by the live lane ahead of the backlog
	Acked    uint64 // batches acknowledged (stored or duplicate)
	Resent   uint64 // batches sent again after a timeout or a reconnect
	Rejected uint64 // rejections received
	Bytes    uint64 // payload bytes published (sent and resent)
	// LastError is the last error reading, packing or acknowledging the
	// stream, or the last rejection's reason; empty once it recovers.
	LastError string
}

// Stats are the uploader's figures.
type Stats struct {
	State      State
	Connects   uint64 // successful connections
	Streams    []StreamStats
	AcksIgnore uint64 // acks that matched no batch in flight
	// InFlightBudget is the payload bytes the backlogs may have in flight
	// now, sized from MinAckRTT and DeliveryRate (bytes per second), what
	// the link has shown on this connection; those two are zero before
	// its first ack, and the budget is then its floor.
	InFlightBudget int
	MinAckRTT      time.Duration
	DeliveryRate   float64
	// AckTimeout is how long a batch sent now would wait for its ack
	// before going again, from SmoothedAckRTT and its variation, backed
	// off while nothing is acknowledged (see Config.AckTimeout);
	// SmoothedAckRTT is zero before the first ack.
	AckTimeout     time.Duration
	SmoothedAckRTT time.Duration
	// IngesterOnline counts the times an ingester replica came online
	// while connected, and everything in flight went again at once.
	IngesterOnline uint64
	// Heartbeats counts the heartbeats published (PUBACK received).
	Heartbeats uint64
}

// Uploader drains an outbox to the broker. Start it, then Close it.
type Uploader struct {
	cfg    Config
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
	startOnce sync.Once
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
	u := &Uploader{
		cfg: cfg, outbox: outbox, log: log.Named("edge").With(zap.String("vehicle", cfg.Vehicle)),
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
		u.rate = newBucket(cfg.MaxBytesPerSecond, cfg.MaxPayload, time.Now())
	}
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
// loop.
func (u *Uploader) Start() {
	u.startOnce.Do(func() {
		u.started = time.Now()
		u.wg.Add(3)
		go u.linkLoop()
		go u.pump()
		go u.heartbeatLoop()
	})
}

// Close stops both loops, publishes the retained offline status when
// connected, and disconnects. What is not acknowledged stays in the
// outbox for the next run.
func (u *Uploader) Close(ctx context.Context) error {
	var err error
	u.closeOnce.Do(func() {
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
		u.rate.force(len(payload), time.Now())
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

// route is a topic filter, its QoS and its handler.
type route struct {
	filter  string
	qos     byte
	handler mqtt.MessageHandler
}

// cli is the paho client of the current (or last) connection attempt.
func (u *Uploader) cli() mqtt.Client { return *u.client.Load() }

func (u *Uploader) stopped() bool {
	select {
	case <-u.stop:
		return true
	default:
		return false
	}
}

// setDown marks the link down: Publish refuses, and the waits of the
// publishes in progress end.
func (u *Uploader) setDown() {
	u.linkMu.Lock()
	u.online.Store(false)
	if u.down != nil {
		close(u.down)
		u.down = nil
	}
	u.linkMu.Unlock()
}

func (u *Uploader) signalLost() {
	u.setDown()
	select {
	case u.lost <- struct{}{}:
	default:
	}
}

// onConnect runs in its own goroutine after each connection: it
// subscribes, in one SUBSCRIBE, to the ack topic (the session may be
// new: a broker without persistence forgets it), to the ingesters'
// status (QoS 0: an ingester that came online while the vehicle was
// away is no news once it reconnects, since everything in flight goes
// again anyway) and to Config.Subscriptions, publishes the retained
// online status, then tells the drain loop to resend what is in flight
// and the heartbeat loop to beat.
func (u *Uploader) onConnect(c mqtt.Client) {
	// One SUBSCRIBE for every filter: one round trip of the link before
	// the first batch, not one per filter. The handlers are the routes
	// linkLoop installed.
	filters := make(map[string]byte, len(u.routes))
	for _, r := range u.routes {
		filters[r.filter] = r.qos
	}
	if err := mqttsub.Subscribe(c, filters, nil, u.cfg.ConnectTimeout); err != nil {
		u.log.Warn("subscribe failed; reconnecting", zap.Error(err))
		// Drop the connection so the link loop starts over.
		c.Disconnect(0)
		u.signalLost()
		return
	}
	p := c.Publish(StatusTopic(u.cfg.Vehicle), 1, true, StatusOnline)
	if !p.WaitTimeout(u.cfg.ConnectTimeout) || p.Error() != nil {
		u.log.Warn("publish online status failed", zap.Error(p.Error()))
	}
	u.epoch.Add(1)
	u.linkMu.Lock()
	u.online.Store(true)
	if u.down == nil {
		u.down = make(chan struct{})
	}
	u.linkMu.Unlock()
	if !c.IsConnectionOpen() {
		// Lost while subscribing: paho's loss handler may have run
		// before the link was marked up (it signalled the link loop).
		u.setDown()
		return
	}
	select {
	case u.connected <- struct{}{}:
	default:
	}
	select {
	case u.beatNow <- struct{}{}:
	default:
	}
}

func (u *Uploader) onAck(_ mqtt.Client, m mqtt.Message) {
	a, err := batch.DecodeAck(m.Payload())
	if err != nil {
		u.log.Warn("undecodable ack", zap.Error(err))
		return
	}
	if a.Status != batch.StatusRejected && a.Vehicle != u.cfg.Vehicle {
		u.ignored.Add(1)
		return
	}
	if a.Store != 0 && a.Store != u.packer.Store {
		// An ack meant for an earlier incarnation of this vehicle's store
		// (moved aside as unreadable): its ranges are not ours.
		u.ignored.Add(1)
		return
	}
	select {
	case u.acks <- a:
	case <-u.stop:
	}
}

// linkLoop connects, waits for the connection to drop, and reconnects
// with capped exponential backoff and jitter.
func (u *Uploader) linkLoop() {
	defer u.wg.Done()
	step := u.cfg.ReconnectMin
	for !u.stopped() {
		select { // forget a loss signalled for an earlier connection
		case <-u.lost:
		default:
		}
		u.state.Store(int32(Connecting))
		// A fresh paho client each time: with a persistent session, paho
		// never completes the tokens of publications cut off by a lost
		// connection, and their message ids would stay taken for good
		// (after enough outages, none would be left).
		// The routes go in before connecting: the persistent session may
		// deliver queued acks and commands before onConnect subscribes,
		// and paho leaves a message without a route unacknowledged.
		c := mqtt.NewClient(u.opts)
		for _, r := range u.routes {
			c.AddRoute(r.filter, r.handler)
		}
		u.client.Store(&c)
		t := c.Connect()
		for !t.WaitTimeout(100 * time.Millisecond) {
			// Paho bounds the attempt by ConnectTimeout.
		}
		if err := t.Error(); err != nil {
			u.state.Store(int32(Offline))
			u.log.Debug("connect failed", zap.Error(err), zap.Duration("retry_in", step))
			wait := step/2 + rand.N(step/2+1)
			step = min(step*2, u.cfg.ReconnectMax)
			if !u.backoff(wait) {
				return
			}
			continue
		}
		u.connects.Add(1)
		u.state.Store(int32(Draining))
		u.log.Info("connected", zap.String("broker", u.cfg.Broker))
		select {
		case <-u.lost:
			u.state.Store(int32(Offline))
			u.log.Info("connection lost")
			select { // a SyncNow made while connected was the drain loop's
			case <-u.syncLink:
			default:
			}
			// A deliberate disconnect may be needed when the loss came
			// from a failed subscribe; Disconnect on a closed link is
			// harmless.
			if c.IsConnectionOpen() {
				c.Disconnect(0)
			}
			step = u.cfg.ReconnectMin
			wait := step/2 + rand.N(step/2+1)
			if !u.backoff(wait) {
				return
			}
		case <-u.stop:
			return
		}
	}
}

// backoff waits before the next connection attempt, less if SyncNow is
// called; it reports false when the uploader is closing.
func (u *Uploader) backoff(wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-u.syncLink:
		u.log.Debug("reconnect wait cut short by SyncNow")
	case <-u.stop:
		return false
	}
	return true
}
