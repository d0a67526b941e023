package cmdlink

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/command"
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Broker is the broker URL: tcp://host:1883, or ssl://host:8883 with
	// TLS.
	Broker string
	// ClientID is the MQTT client id; empty means vigil-fleet-<random>.
	// The session is clean: responses are collected only while
	// connected.
	ClientID string
	// TLS, when set, secures the connection (ssl://, tls:// or mqtts://
	// URL), with the operator's client certificate for mutual TLS.
	TLS *tls.Config
	// ConnectTimeout bounds the connection and the subscriptions; 0
	// means 10 s.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration
	// Clock dates envelopes, replies and what is seen of the vehicles;
	// nil means the system clock.
	Clock clock.Clock
	// Log receives connection events; nil means none.
	Log *zap.Logger
}

// DefaultTTL is how long an envelope Send dates itself is valid.
const DefaultTTL = 5 * time.Minute

// Reply is one vehicle's response.
type Reply struct {
	Vehicle  string // from the response topic
	Response command.Response
	At       time.Time // when it arrived
}

// Result is what Send collected.
type Result struct {
	// Envelope is the envelope as sent (defaults filled in); zero for
	// SendRaw.
	Envelope      command.Envelope
	CorrelationID string
	// Replies are the responses carrying the correlation id, one per
	// vehicle (the first; a duplicate delivery is ignored), in arrival
	// order. A vehicle not waited for may answer too: one that got the
	// envelope on the wrong topic rejects it.
	Replies []Reply
	// Missing are the vehicles waited for that did not answer in time,
	// sorted.
	Missing []string
}

// OK reports whether at least one vehicle answered, every answer is ok
// and none is missing.
func (r Result) OK() bool {
	if len(r.Replies) == 0 || len(r.Missing) > 0 {
		return false
	}
	for _, rep := range r.Replies {
		if !rep.Response.OK {
			return false
		}
	}
	return true
}

// Vehicle is a vehicle's status as the broker retains it.
type Vehicle struct {
	Vehicle string
	// Status is the payload: "online", "offline", or whatever else was
	// published there (at most 64 bytes of it).
	Status string
	Online bool
	// Retained: the broker held it when we subscribed (it was not
	// published while we listened).
	Retained bool
	Seen     time.Time // when it arrived
}

// Sender is the fleet end of the command channel: its own MQTT
// connection, subscribed to every vehicle's responses and status.
type Sender struct {
	cfg SenderConfig
	log *zap.Logger
	c   *conn

	mu           sync.Mutex
	waiters      map[string][]*waiter
	vehicles     map[string]Vehicle
	subscribedAt time.Time // the latest subscription to the status filter
}

type waiter struct {
	mu      sync.Mutex
	replies []Reply
	notify  chan struct{}
}

// Dial connects to the broker and subscribes to ResponseFilter and
// StatusFilter; it returns once both subscriptions stand, or with the
// reason they do not. The connection then reconnects by itself (paho)
// and subscribes again after each reconnection.
func Dial(ctx context.Context, cfg SenderConfig) (*Sender, error) {
	cfg.Clock = clock.Or(cfg.Clock)
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	s := &Sender{cfg: cfg, log: log.Named("cmdlink.sender"), waiters: map[string][]*waiter{}, vehicles: map[string]Vehicle{}}
	c, err := dial(ctx, connConfig{
		broker: cfg.Broker, clientID: cfg.ClientID, prefix: "vigil-fleet-", tls: cfg.TLS,
		connectTimeout: cfg.ConnectTimeout, keepAlive: cfg.KeepAlive,
		filters: map[string]byte{ResponseFilter: 1, StatusFilter: 1}, handler: s.onMessage,
		subscribed: func() {
			s.mu.Lock()
			s.subscribedAt = s.cfg.Clock.Now()
			s.mu.Unlock()
		},
		log: s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("cmdlink: %w", err)
	}
	s.c = c
	return s, nil
}

// Close disconnects; ctx bounds the wait for a reconnection in progress.
// Sends in progress end at their contexts.
func (s *Sender) Close(ctx context.Context) error { return s.c.close(ctx) }

func (s *Sender) onMessage(_ mqtt.Client, m mqtt.Message) {
	topic := m.Topic()
	if v, ok := VehicleFromResponseTopic(topic); ok {
		resp, err := command.DecodeResponse(m.Payload())
		if err != nil {
			s.log.Warn("undecodable response", zap.String("vehicle", v), zap.Error(err))
			return
		}
		rep := Reply{Vehicle: v, Response: resp, At: s.cfg.Clock.Now()}
		s.mu.Lock()
		ws := slices.Clone(s.waiters[resp.CorrelationID])
		s.mu.Unlock()
		for _, w := range ws {
			w.add(rep)
		}
		if len(ws) == 0 {
			s.log.Debug("response nobody waits for", zap.String("vehicle", v), zap.String("correlation_id", resp.CorrelationID))
		}
		return
	}
	if v, ok := VehicleFromStatusTopic(topic); ok {
		p := m.Payload()
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(p) == 0 { // a retained message cleared
			delete(s.vehicles, v)
			return
		}
		st := string(p[:min(len(p), 64)])
		s.vehicles[v] = Vehicle{Vehicle: v, Status: st, Online: st == StatusOnline, Retained: m.Retained(), Seen: s.cfg.Clock.Now()}
	}
}

func (w *waiter) add(r Reply) {
	w.mu.Lock()
	for _, x := range w.replies {
		if x.Vehicle == r.Vehicle {
			w.mu.Unlock()
			return // a duplicate delivery (QoS 1), or a second answer
		}
	}
	w.replies = append(w.replies, r)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *waiter) snapshot() []Reply {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.replies)
}

// NewCorrelationID returns 8 random bytes in hex.
func NewCorrelationID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Send fills in what env lacks (a random nonce, IssuedAt now, Expires
// DefaultTTL later, a random correlation id), signs it with priv,
// publishes it at QoS 1 on TargetTopic(env.Target), and collects the
// responses carrying its correlation id until every vehicle in wait has
// answered or ctx ends. With no wait given, a single target's vehicle
// is waited for, and a command to "all" collects until ctx ends (give
// ctx a deadline). Ending at ctx is no error: Result.Missing names who
// did not answer. The error is for what kept the envelope from being
// signed or published.
func (s *Sender) Send(ctx context.Context, env command.Envelope, priv ed25519.PrivateKey, wait ...string) (Result, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return Result{}, errors.New("cmdlink: send: not an ed25519 private key")
	}
	if env.Target != command.TargetAll && !ValidVehicle(env.Target) {
		return Result{}, fmt.Errorf("cmdlink: send: bad target %q: want a vehicle id or %q", env.Target, command.TargetAll)
	}
	if env.Nonce == "" {
		n, err := command.NewNonce(nil)
		if err != nil {
			return Result{}, err
		}
		env.Nonce = n
	}
	if env.IssuedAt.IsZero() {
		env.IssuedAt = s.cfg.Clock.Now()
	}
	env.IssuedAt = env.IssuedAt.Truncate(time.Millisecond)
	if env.Expires.IsZero() {
		env.Expires = env.IssuedAt.Add(DefaultTTL)
	}
	if env.CorrelationID == "" {
		env.CorrelationID = NewCorrelationID()
	}
	if env.KeyID == "" {
		env.KeyID = command.KeyIDOf(priv.Public().(ed25519.PublicKey))
	}
	signed, err := command.Sign(env, priv)
	if err != nil {
		return Result{}, err
	}
	raw, err := signed.Marshal()
	if err != nil {
		return Result{}, fmt.Errorf("cmdlink: send: %w", err)
	}
	if len(wait) == 0 && env.Target != command.TargetAll {
		wait = []string{env.Target}
	}
	res, err := s.SendRaw(ctx, TargetTopic(env.Target), raw, env.CorrelationID, wait...)
	res.Envelope = env
	return res, err
}

// SendRaw publishes raw (a signed envelope, or anything else) at QoS 1 on
// topic and collects the responses carrying correlationID as Send does;
// with no wait given it collects until ctx ends. It is for resending an
// envelope signed earlier, and for tests.
func (s *Sender) SendRaw(ctx context.Context, topic string, raw []byte, correlationID string, wait ...string) (Result, error) {
	res := Result{CorrelationID: correlationID}
	if s.c.isClosed() {
		return res, errors.New("cmdlink: send: sender closed")
	}
	s.mu.Lock()
	w := &waiter{notify: make(chan struct{}, 1)}
	s.waiters[correlationID] = append(s.waiters[correlationID], w)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		ws := slices.DeleteFunc(s.waiters[correlationID], func(x *waiter) bool { return x == w })
		if len(ws) == 0 {
			delete(s.waiters, correlationID)
		} else {
			s.waiters[correlationID] = ws
		}
		s.mu.Unlock()
	}()

	if err := s.c.publish(ctx, topic, raw); err != nil {
		return res, fmt.Errorf("cmdlink: send: %w", err)
	}
	s.log.Debug("published", zap.String("topic", topic), zap.String("correlation_id", correlationID))

	for {
		res.Replies = w.snapshot()
		res.Missing = missing(wait, res.Replies)
		if len(wait) > 0 && len(res.Missing) == 0 {
			return res, nil
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			res.Replies = w.snapshot()
			res.Missing = missing(wait, res.Replies)
			return res, nil
		}
	}
}

func missing(wait []string, replies []Reply) []string {
	var out []string
	for _, v := range wait {
		if !slices.ContainsFunc(replies, func(r Reply) bool { return r.Vehicle == v }) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// Vehicles returns the vehicles whose status the broker retains (and any
// that published one since), sorted by id. Retained messages come right
// after the subscription, but MQTT 3.1.1 marks no end to them: Vehicles
// returns once wait has passed since the status filter was (last)
// subscribed, or when ctx ends, with ctx's error.
func (s *Sender) Vehicles(ctx context.Context, wait time.Duration) ([]Vehicle, error) {
	s.mu.Lock()
	at := s.subscribedAt
	s.mu.Unlock()
	var err error
	if d := time.Until(at.Add(wait)); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			err = ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Vehicle, 0, len(s.vehicles))
	for _, v := range s.vehicles {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Vehicle < out[j].Vehicle })
	return out, err
}

// Online returns the ids of the vehicles whose status is online.
func Online(vs []Vehicle) []string {
	var out []string
	for _, v := range vs {
		if v.Online {
			out = append(out, v.Vehicle)
		}
	}
	return out
}
