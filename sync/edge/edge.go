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
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
)

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
	// Window is how many unacknowledged batches each stream may have in
	// flight; 0 means 4.
	Window int
	// AckTimeout is how long a batch waits for its ack before it is sent
	// again; 0 means 10 s.
	AckTimeout time.Duration
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
}

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
		c.Window = 4
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
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
	return nil
}

// Topics of one vehicle.
func TelemetryTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/telemetry" }
func AckTopic(vehicle string) string       { return "vigil/v1/" + vehicle + "/ack" }
func StatusTopic(vehicle string) string    { return "vigil/v1/" + vehicle + "/status" }

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
	// Connecting: a connection attempt is in progress.
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
	Acked    uint64 // batches acknowledged (stored or duplicate)
	Resent   uint64 // batches sent again after a timeout or a reconnect
	Rejected uint64 // rejections received
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
}

type inflight struct {
	first, last uint64
	payload     []byte
	sentAt      time.Time // zero: to send (again) when connected
	acked       bool
	everSent    bool
}

type streamState struct {
	name     string
	cursor   uint64
	next     uint64 // records after it are not in flight yet
	inflight []*inflight
	stats    StreamStats
	stalled  bool // the next record fits in no batch
}

// Uploader drains an outbox to the broker. Start it, then Close it.
type Uploader struct {
	cfg    Config
	outbox storage.Outbox
	log    *zap.Logger
	packer batch.Packer
	client mqtt.Client

	acks      chan batch.Ack
	connected chan struct{} // the OnConnect handler subscribed
	lost      chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once

	online   atomic.Bool
	epoch    atomic.Uint64 // connections that subscribed
	state    atomic.Int32
	connects atomic.Uint64
	ignored  atomic.Uint64

	mu      sync.Mutex // guards streams' stats snapshot
	streams []StreamStats
	backlog bool
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
		lost:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	u.packer = batch.Packer{Vehicle: cfg.Vehicle, Boot: cfg.Boot, Compression: batch.Flate, MaxPayload: cfg.MaxPayload}
	if cfg.UseNone {
		u.packer.Compression = batch.None
	}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetStore(nullStore{}).
		SetOrderMatters(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(min(cfg.KeepAlive, 10*time.Second)).
		SetWriteTimeout(cfg.ConnectTimeout).
		SetWill(StatusTopic(cfg.Vehicle), StatusOffline, 1, true).
		SetOnConnectHandler(u.onConnect).
		SetConnectionLostHandler(func(mqtt.Client, error) { u.signalLost() })
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	u.client = mqtt.NewClient(opts)
	return u, nil
}

// Start starts the connection loop and the drain loop.
func (u *Uploader) Start() {
	u.startOnce.Do(func() {
		u.wg.Add(2)
		go u.linkLoop()
		go u.pump()
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
		if u.client.IsConnectionOpen() {
			t := u.client.Publish(StatusTopic(u.cfg.Vehicle), 1, true, StatusOffline)
			t.WaitTimeout(time.Second)
		}
		u.client.Disconnect(250)
		u.online.Store(false)
		u.state.Store(int32(Offline))
	})
	return err
}

// State returns the link's state.
func (u *Uploader) State() State {
	s := State(u.state.Load())
	if s != Connecting && s != Offline {
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
	u.mu.Lock()
	s.Streams = append([]StreamStats(nil), u.streams...)
	u.mu.Unlock()
	return s
}

func (u *Uploader) stopped() bool {
	select {
	case <-u.stop:
		return true
	default:
		return false
	}
}

func (u *Uploader) signalLost() {
	u.online.Store(false)
	select {
	case u.lost <- struct{}{}:
	default:
	}
}

// onConnect runs in its own goroutine after each connection: it
// subscribes to the ack topic (the session may be new: a broker without
// persistence forgets it), publishes the retained online status, then
// tells the drain loop to resend what is in flight.
func (u *Uploader) onConnect(c mqtt.Client) {
	t := c.Subscribe(AckTopic(u.cfg.Vehicle), 1, u.onAck)
	if !t.WaitTimeout(u.cfg.ConnectTimeout) || t.Error() != nil {
		u.log.Warn("subscribe to acks failed; reconnecting", zap.Error(t.Error()))
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
	u.online.Store(true)
	select {
	case u.connected <- struct{}{}:
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
		t := u.client.Connect()
		for !t.WaitTimeout(100 * time.Millisecond) {
			// Paho bounds the attempt by ConnectTimeout.
		}
		if err := t.Error(); err != nil {
			u.state.Store(int32(Offline))
			u.log.Debug("connect failed", zap.Error(err), zap.Duration("retry_in", step))
			wait := step/2 + rand.N(step/2+1)
			step = min(step*2, u.cfg.ReconnectMax)
			select {
			case <-time.After(wait):
			case <-u.stop:
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
			// A deliberate disconnect may be needed when the loss came
			// from a failed subscribe; Disconnect on a closed link is
			// harmless.
			if u.client.IsConnectionOpen() {
				u.client.Disconnect(0)
			}
			step = u.cfg.ReconnectMin
			wait := step/2 + rand.N(step/2+1)
			select {
			case <-time.After(wait):
			case <-u.stop:
				return
			}
		case <-u.stop:
			return
		}
	}
}

// pump is the drain loop: it owns the per-stream state.
func (u *Uploader) pump() {
	defer u.wg.Done()
	var streams []*streamState
	for _, name := range u.outbox.Streams() {
		c, err := u.outbox.Cursor(name)
		st := &streamState{name: name, cursor: c, next: c}
		st.stats.Stream = name
		if err != nil {
			st.stats.LastError = err.Error()
		}
		streams = append(streams, st)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var epoch uint64
	for {
		durable := u.outbox.DurableChanged()
		if e := u.epoch.Load(); e != epoch && u.online.Load() {
			// A new connection: everything in flight goes again.
			epoch = e
			for _, st := range streams {
				for _, b := range st.inflight {
					b.sentAt = time.Time{}
				}
			}
		}
		wake := u.step(streams)
		u.publishStats(streams)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wake)
		select {
		case <-u.stop:
			return
		case <-durable:
		case <-timer.C:
		case <-u.connected:
		case a := <-u.acks:
			u.applyAck(streams, a)
			// Take whatever else has arrived before stepping.
			for more := true; more; {
				select {
				case a := <-u.acks:
					u.applyAck(streams, a)
				default:
					more = false
				}
			}
		}
	}
}

func (u *Uploader) applyAck(streams []*streamState, a batch.Ack) {
	if a.Status == batch.StatusRejected {
		for _, st := range streams {
			if st.name == a.Stream {
				st.stats.Rejected++
				st.stats.LastError = "rejected: " + a.Reason
			}
		}
		u.log.Error("batch rejected by the ingester", zap.String("stream", a.Stream),
			zap.Uint64("first", a.FirstSeq), zap.Uint64("last", a.LastSeq), zap.String("reason", a.Reason))
		return
	}
	matched := false
	for _, st := range streams {
		if st.name != a.Stream {
			continue
		}
		for _, b := range st.inflight {
			if !b.acked && b.first >= a.FirstSeq && b.last <= a.LastSeq {
				b.acked = true
				matched = true
				st.stats.Acked++
			}
		}
	}
	if !matched {
		u.ignored.Add(1)
	}
}

// step advances cursors, resends what timed out and fills the windows.
// It returns how long to sleep at most before the next step.
func (u *Uploader) step(streams []*streamState) time.Duration {
	wake := time.Hour
	now := time.Now()
	online := u.online.Load()
	for _, st := range streams {
		// Advance the cursor through the acknowledged prefix.
		through := st.cursor
		n := 0
		for n < len(st.inflight) && st.inflight[n].acked {
			through = st.inflight[n].last
			n++
		}
		if through > st.cursor {
			if err := u.outbox.Ack(st.name, through); err != nil {
				st.stats.LastError = err.Error()
				u.log.Error("outbox ack failed", zap.String("stream", st.name), zap.Error(err))
				wake = min(wake, time.Second)
			} else {
				st.cursor = through
				st.inflight = st.inflight[n:]
				if st.stats.LastError != "" && !st.stalled {
					st.stats.LastError = ""
				}
			}
		}
		if !online {
			continue
		}
		// Resend what waited too long (or everything after a reconnect).
		for _, b := range st.inflight {
			if b.acked {
				continue
			}
			if due := b.sentAt.Add(u.cfg.AckTimeout); b.sentAt.IsZero() || !now.Before(due) {
				again := b.everSent
				if !u.publish(b, now) {
					break
				}
				if again {
					st.stats.Resent++
				} else {
					st.stats.Sent++
				}
			}
			wake = min(wake, time.Until(b.sentAt.Add(u.cfg.AckTimeout)))
		}
		// Fill the window.
		for !st.stalled && len(st.inflight) < u.cfg.Window {
			payload, h, _, err := u.packer.Next(u.outbox, st.name, st.next)
			var tooLarge *batch.TooLargeError
			if errors.As(err, &tooLarge) {
				// Never skipped: skipping would need an ack the cloud
				// never gave. Storage's MaxRecordBytes prevents it.
				st.stalled = true
				st.stats.LastError = err.Error()
				u.log.Error("record fits in no batch; stream stalled", zap.Error(err))
				break
			}
			if err != nil {
				st.stats.LastError = err.Error()
				u.log.Warn("read outbox", zap.String("stream", st.name), zap.Error(err))
				wake = min(wake, time.Second)
				break
			}
			if payload == nil {
				break
			}
			b := &inflight{first: h.FirstSeq, last: h.LastSeq, payload: payload}
			st.inflight = append(st.inflight, b)
			st.next = h.LastSeq
			if u.publish(b, now) {
				st.stats.Sent++
				wake = min(wake, u.cfg.AckTimeout)
			} else {
				break
			}
		}
	}
	return max(wake, time.Millisecond)
}

// publish sends b at QoS 1 without waiting for the PUBACK: only the
// ingester's ack counts. It reports false when the link is down.
func (u *Uploader) publish(b *inflight, now time.Time) bool {
	t := u.client.Publish(TelemetryTopic(u.cfg.Vehicle), 1, false, b.payload)
	select {
	case <-t.Done():
		if t.Error() != nil {
			u.log.Debug("publish failed", zap.Error(t.Error()))
			return false
		}
	default:
	}
	b.sentAt = now
	b.everSent = true
	return true
}

func (u *Uploader) publishStats(streams []*streamState) {
	out := make([]StreamStats, len(streams))
	backlog := false
	for i, st := range streams {
		s := st.stats
		s.Cursor = st.cursor
		s.InFlight = 0
		for _, b := range st.inflight {
			if !b.acked {
				s.InFlight++
			}
		}
		out[i] = s
		if len(st.inflight) > 0 || st.stalled {
			backlog = true
		} else if bl, err := u.outbox.Backlog(st.name); err == nil && bl.Records > 0 {
			backlog = true
		}
	}
	u.mu.Lock()
	u.streams, u.backlog = out, backlog
	u.mu.Unlock()
}
