package ingest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/internal/pahostore"
	"github.com/vigil-av/vigil/sync/presence"
	"github.com/vigil-av/vigil/sync/sink"
)

// Config configures an Ingester.
type Config struct {
	// Broker is the broker URL, e.g. tcp://broker:1883.
	Broker string
	// ClientID must differ between replicas; empty means a random one.
	ClientID string
	// Replica names this replica in its presence topic,
	// vigil/v1/fleet/ingest/<Replica>/status (see sync/presence), where
	// it keeps a retained "online" while subscribed and "offline" as its
	// last will and when it closes; vehicles send again what waits for an
	// ack when a replica comes online. Empty means ClientID, which must
	// then be a valid name (letters, digits, '-', '_', '.'). Give each
	// replica a stable name: each name leaves a retained status on the
	// broker.
	Replica string
	// Group is the shared-subscription group; empty means "vigil-ingest".
	// Replicas in one group split the fleet's load.
	Group string
	// PersistentSession makes the broker keep this replica's session
	// (and its share of the messages) while it is away. Off by default:
	// a replica that died would otherwise hold its share until it came
	// back, while with a clean session the broker routes to the replicas
	// still there and the edge's resend covers what was in flight.
	PersistentSession bool
	// PublishTimeout bounds the wait for an ack's publication; 0 means 10 s.
	PublishTimeout time.Duration
	// ConnectTimeout bounds a connection attempt; 0 means 10 s.
	ConnectTimeout time.Duration
	// ReconnectMax caps the reconnect backoff (paho's: after a lost
	// connection it tries at once, then waits 1 s, or ReconnectMax if
	// less, doubling up to ReconnectMax); 0 means DefaultReconnectMax
	// (1 s). Vehicles' batches go nowhere while no ingester is
	// subscribed, so an ingester comes back within a second of the
	// broker; its replicas are few, and their attempts cost the broker
	// little. (With 2 s, a broker down for 1 s had the ingester back 2 s
	// after it: vigil-bench sync's restart_to_live_ms.)
	ReconnectMax time.Duration
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration
	// TLS, when set, secures the connection (ssl:// or tls:// broker
	// URL), with the ingester's client certificate for mutual TLS.
	TLS *tls.Config
}

// Stats are the ingester's figures.
type Stats struct {
	Received   uint64 // batches handled (telemetry and logs)
	Stored     uint64 // acks sent: stored
	Duplicate  uint64 // acks sent: duplicate
	Rejected   uint64 // acks sent: rejected (including WrongTopic)
	Failed     uint64 // local failures: no ack sent, the edge resends
	AckErrors  uint64 // acks that could not be published
	BadTopic   uint64 // messages on a topic naming no valid vehicle
	WrongTopic uint64 // batches rejected for their stream's topic (logs on telemetry or the reverse)
	Connects   uint64
	Subscribed bool
	// Heartbeats recorded in the sink (heartbeat.go); HeartbeatsOld
	// heard but not newer than the one recorded; HeartbeatErrors
	// undecodable, without a store (version 1), or not written.
	Heartbeats, HeartbeatsOld, HeartbeatErrors uint64
}

// DefaultReconnectMax is Config.ReconnectMax's default.
const DefaultReconnectMax = time.Second

// Ingester consumes telemetry for a sink.
type Ingester struct {
	cfg    Config
	sink   *sink.Sink
	log    *zap.Logger
	client mqtt.Client
	topics []string

	mu      sync.Mutex
	closed  bool
	started bool
	wg      sync.WaitGroup
	redial  mqttsub.Redialer // after a failed subscription

	received, stored, duplicate, rejected, failed, ackErrors, badTopic, wrongTopic, connects atomic.Uint64
	heartbeats, heartbeatsOld, heartbeatErrors                                               atomic.Uint64
	subscribed                                                                               atomic.Bool
}

// Topic filters of every vehicle's telemetry and logs. The ingester
// subscribes to both as $share/<group>/<filter>, and to the vehicles'
// heartbeats (presence.HeartbeatFilter) without sharing: each replica
// gets each heartbeat, and the retained ones when it subscribes.
const (
	TelemetryFilter = "vigil/v1/+/telemetry"
	LogsFilter      = "vigil/v1/+/logs"
)

// New builds an Ingester; it connects nothing until Start.
func New(cfg Config, s *sink.Sink, log *zap.Logger) (*Ingester, error) {
	if s == nil {
		return nil, errors.New("ingest: nil sink")
	}
	if cfg.Broker == "" {
		return nil, errors.New("ingest: no broker URL")
	}
	if cfg.ClientID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.ClientID = "vigil-ingest-" + hex.EncodeToString(b[:])
	}
	if cfg.Group == "" {
		cfg.Group = "vigil-ingest"
	}
	if strings.ContainsAny(cfg.Group, "/+#") {
		return nil, fmt.Errorf("ingest: bad group %q", cfg.Group)
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = DefaultReconnectMax
	}
	if cfg.Replica == "" {
		cfg.Replica = cfg.ClientID
	}
	if !presence.ValidReplica(cfg.Replica) {
		return nil, fmt.Errorf("ingest: replica name %q (the client id unless given): want 1 to 64 letters, digits, '-', '_' or '.'", cfg.Replica)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if log == nil {
		log = zap.NewNop()
	}
	in := &Ingester{cfg: cfg, sink: s, log: log.Named("ingest"), topics: []string{
		"$share/" + cfg.Group + "/" + TelemetryFilter,
		"$share/" + cfg.Group + "/" + LogsFilter,
		presence.HeartbeatFilter,
	}}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(!cfg.PersistentSession).
		SetStore(pahostore.Null{}).
		SetOrderMatters(false).
		SetAutoAckDisabled(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(min(time.Second, cfg.ReconnectMax)).
		SetMaxReconnectInterval(cfg.ReconnectMax).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(min(cfg.KeepAlive, 10*time.Second)).
		SetWriteTimeout(cfg.PublishTimeout).
		SetWill(presence.IngestStatusTopic(cfg.Replica), presence.StatusOffline, 1, true).
		SetOnConnectHandler(in.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			in.subscribed.Store(false)
			in.log.Info("connection lost", zap.Error(err))
		})
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	in.client = mqtt.NewClient(opts)
	return in, nil
}

// Start connects in the background (paho retries until it succeeds) and
// returns; ctx bounds the start only. An ingester starts once, and not
// after Close.
func (in *Ingester) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ingest: start: %w", err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.closed:
		return errors.New("ingest: start after Close")
	case in.started:
		return errors.New("ingest: already started")
	}
	in.started = true
	in.client.Connect() // completes in the background; OnConnect subscribes
	return nil
}

// Close disconnects and waits for the messages being handled.
func (in *Ingester) Close(ctx context.Context) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	in.mu.Unlock()
	// No redial may connect the client again once it is disconnected.
	redialErr := in.redial.Close(ctx)
	if in.client.IsConnectionOpen() {
		t := in.client.Publish(presence.IngestStatusTopic(in.cfg.Replica), 1, true, presence.StatusOffline)
		t.WaitTimeout(time.Second)
	}
	in.client.Disconnect(250)
	done := make(chan struct{})
	go func() { in.wg.Wait(); close(done) }()
	select {
	case <-done:
		return redialErr
	case <-ctx.Done():
		return fmt.Errorf("ingest: close: %w", ctx.Err())
	}
}

// Replica is the replica's name in its presence topic.
func (in *Ingester) Replica() string { return in.cfg.Replica }

// Stats returns the ingester's figures.
func (in *Ingester) Stats() Stats {
	return Stats{
		Received: in.received.Load(), Stored: in.stored.Load(), Duplicate: in.duplicate.Load(),
		Rejected: in.rejected.Load(), Failed: in.failed.Load(), AckErrors: in.ackErrors.Load(),
		BadTopic: in.badTopic.Load(), WrongTopic: in.wrongTopic.Load(), Connects: in.connects.Load(), Subscribed: in.subscribed.Load(),
		Heartbeats: in.heartbeats.Load(), HeartbeatsOld: in.heartbeatsOld.Load(), HeartbeatErrors: in.heartbeatErrors.Load(),
	}
}

// onConnect (re-)subscribes after every connection: a clean session, or
// a broker that lost its state, has no subscription. Once the broker has
// granted it, the replica's retained online status tells the vehicles to
// send again what they sent into the void meanwhile.
func (in *Ingester) onConnect(c mqtt.Client) {
	in.connects.Add(1)
	filters := make(map[string]byte, len(in.topics))
	for _, f := range in.topics {
		filters[f] = 1
	}
	if err := mqttsub.Subscribe(c, filters, in.onMessage, in.cfg.ConnectTimeout); err != nil {
		in.log.Error("subscribe failed; dropping the connection to retry", zap.Strings("topics", in.topics), zap.Error(err))
		in.redial.Redial(c)
		return
	}
	p := c.Publish(presence.IngestStatusTopic(in.cfg.Replica), 1, true, presence.StatusOnline)
	if !p.WaitTimeout(in.cfg.ConnectTimeout) || p.Error() != nil {
		// The vehicles resend at their ack timeout instead.
		in.log.Warn("publish online status failed", zap.String("replica", in.cfg.Replica), zap.Error(p.Error()))
	}
	in.subscribed.Store(true)
	in.log.Info("subscribed", zap.Strings("topics", in.topics), zap.String("replica", in.cfg.Replica))
}

// Kinds of data topic.
const (
	KindTelemetry = "telemetry" // every stream but logs
	KindLogs      = "logs"      // the logs stream (record.StreamLogs)
)

// ParseTopic returns the vehicle and the kind (KindTelemetry or
// KindLogs) of vigil/v1/<vehicle>/telemetry or vigil/v1/<vehicle>/logs.
func ParseTopic(topic string) (vehicle, kind string, ok bool) {
	parts := strings.Split(topic, "/")
	if len(parts) != 4 || parts[0] != "vigil" || parts[1] != "v1" || !batch.ValidName(parts[2]) {
		return "", "", false
	}
	if parts[3] != KindTelemetry && parts[3] != KindLogs {
		return "", "", false
	}
	return parts[2], parts[3], true
}

// VehicleFromTopic returns the vehicle of vigil/v1/<vehicle>/telemetry
// or vigil/v1/<vehicle>/logs.
func VehicleFromTopic(topic string) (string, bool) {
	v, _, ok := ParseTopic(topic)
	return v, ok
}

// KindOf is the kind of topic the batches of stream go on.
func KindOf(stream string) string {
	if stream == record.StreamLogs {
		return KindLogs
	}
	return KindTelemetry
}

// peekHeader parses the header of a batch without inflating its body:
// DecodeLimit with a negative limit stops right after the header, which
// it returns with ErrTooLarge when it parsed. ok is false when the header
// does not parse; Sink.Ingest then rejects the batch with the reason.
func peekHeader(raw []byte) (batch.Header, bool) {
	h, _, err := batch.DecodeLimit(raw, -1)
	return h, errors.Is(err, batch.ErrTooLarge)
}

// AckTopic is where the acks of vehicle go.
func AckTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/ack" }

func (in *Ingester) onMessage(c mqtt.Client, m mqtt.Message) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return // not acknowledged: with a persistent session the broker redelivers
	}
	in.wg.Add(1)
	in.mu.Unlock()
	defer in.wg.Done()
	if _, kind, ok := presence.ParseVehicleTopic(m.Topic()); ok && kind == "heartbeat" {
		in.onHeartbeat(m)
		m.Ack()
		return
	}
	in.received.Add(1)

	vehicle, kind, ok := ParseTopic(m.Topic())
	if !ok {
		in.badTopic.Add(1)
		in.log.Warn("batch on an unexpected topic", zap.String("topic", m.Topic()))
		m.Ack()
		return
	}
	var ack batch.Ack
	var err error
	if h, ok := peekHeader(m.Payload()); ok && KindOf(h.Stream) != kind {
		in.wrongTopic.Add(1)
		err = fmt.Errorf("%w: a batch of stream %q arrived on the %s topic; it goes on %s", sink.ErrRejected, h.Stream, kind, KindOf(h.Stream))
		ack = batch.Ack{Vehicle: h.Vehicle, Store: h.Store, Boot: h.Boot, Stream: h.Stream, FirstSeq: h.FirstSeq, LastSeq: h.LastSeq,
			Status: batch.StatusRejected, Reason: err.Error()}
	} else {
		ack, err = in.sink.Ingest(vehicle, m.Payload())
	}
	switch {
	case err == nil:
	case errors.Is(err, sink.ErrRejected):
		in.log.Warn("batch rejected", zap.String("vehicle", vehicle), zap.Error(err))
	default:
		// Our own trouble (the disk): no application ack, so the edge
		// resends after its timeout. The MQTT-level ack is still given:
		// MQTT 3.1.1 redelivers only on reconnect, so withholding it
		// would only hold one of the session's in-flight slots.
		in.failed.Add(1)
		in.log.Error("sink failed; not acknowledging", zap.String("vehicle", vehicle), zap.Error(err))
		m.Ack()
		return
	}
	payload, eerr := batch.EncodeAck(ack)
	if eerr != nil {
		in.ackErrors.Add(1)
		in.log.Error("encode ack", zap.Error(eerr))
		m.Ack()
		return
	}
	t := c.Publish(AckTopic(vehicle), 1, false, payload)
	if !t.WaitTimeout(in.cfg.PublishTimeout) || t.Error() != nil {
		// Stored but not acknowledged: the edge resends and gets a
		// duplicate ack.
		in.ackErrors.Add(1)
		in.log.Warn("publish ack failed", zap.String("vehicle", vehicle), zap.Error(t.Error()))
	} else {
		switch ack.Status {
		case batch.StatusStored:
			in.stored.Add(1)
		case batch.StatusDuplicate:
			in.duplicate.Add(1)
		case batch.StatusRejected:
			in.rejected.Add(1)
		}
	}
	m.Ack() // the batch is stored (or will never be): the broker may forget it
}
