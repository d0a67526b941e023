package ckptlink

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

	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/internal/pahostore"
)

// DefaultGroup is ReceiverConfig.Group's default.
const DefaultGroup = "vigil-checkpoints"

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// Broker is the broker URL, e.g. tcp://broker:1883.
	Broker string
	// ClientID must differ between replicas; empty means a random one.
	ClientID string
	// Group is the shared-subscription group; empty means DefaultGroup.
	// Replicas in one group split the fleet's checkpoint traffic.
	Group string
	// TLS, when set, secures the connection (ssl:// or tls:// broker URL)
	// with the receiver's client certificate (the ingester's: the ACL's
	// "ingest" identity).
	TLS *tls.Config
	// Blobs keeps the chunks; Catalog records the complete checkpoints.
	Blobs   blob.Store
	Catalog *blob.Catalog
	// PublishTimeout bounds the wait for an ack's PUBACK; 0 means 10 s.
	PublishTimeout time.Duration
	// ConnectTimeout bounds a connection attempt; 0 means 10 s.
	ConnectTimeout time.Duration
	// ReconnectMax caps paho's reconnect backoff; 0 means 1 s.
	ReconnectMax time.Duration
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration
	Log       *zap.Logger
}

// ReceiverStats are the Receiver's figures.
type ReceiverStats struct {
	Received  uint64 // envelopes handled
	Stored    uint64 // chunks stored (new to the blob store)
	Duplicate uint64 // chunks the blob store already had
	Parts     uint64 // manifest parts held for the rest
	Complete  uint64 // manifests acknowledged complete
	Missing   uint64 // manifests answered with missing chunks
	Refused   uint64 // envelopes refused (by reason in RefusedBy)
	RefusedBy map[string]uint64
	Failed    uint64 // local failures: no ack, the vehicle sends again
	AckErrors uint64
	BadTopic  uint64
	Connects  uint64
	// Subscribed says the subscription is in place on the connection.
	Subscribed bool
}

// Receiver is the cloud end of the checkpoint upload: it stores the
// vehicles' chunks in a blob store and completes their checkpoints in
// the catalog. Start it, then Close it.
type Receiver struct {
	cfg    ReceiverConfig
	log    *zap.Logger
	client mqtt.Client
	filter string
	stage  staging

	mu      sync.Mutex
	started bool
	closed  bool
	wg      sync.WaitGroup
	redial  mqttsub.Redialer

	received, stored, duplicate, parts, complete, missing, refused, failed, ackErrors, badTopic, connects atomic.Uint64
	subscribed                                                                                            atomic.Bool
	reasonsMu                                                                                             sync.Mutex
	reasons                                                                                               map[string]uint64
}

// NewReceiver builds a Receiver; it connects nothing until Start.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	switch {
	case cfg.Broker == "":
		return nil, errors.New("checkpoint receiver: no broker URL")
	case cfg.Blobs == nil || cfg.Catalog == nil:
		return nil, errors.New("checkpoint receiver: no blob store or catalog")
	}
	if cfg.ClientID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.ClientID = "vigil-checkpoints-" + hex.EncodeToString(b[:])
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if strings.ContainsAny(cfg.Group, "/+#") {
		return nil, fmt.Errorf("checkpoint receiver: bad group %q", cfg.Group)
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	r := &Receiver{cfg: cfg, log: cfg.Log.Named("ckptrecv"), filter: "$share/" + cfg.Group + "/" + Filter, reasons: map[string]uint64{}}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(true).
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
		SetOnConnectHandler(r.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			r.subscribed.Store(false)
			r.log.Info("connection lost", zap.Error(err))
		})
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	r.client = mqtt.NewClient(opts)
	return r, nil
}

// Start connects in the background (paho retries until it succeeds);
// ctx bounds the start only. A receiver starts once, and not after Close.
func (r *Receiver) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checkpoint receiver: start: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return errors.New("checkpoint receiver: start after Close")
	case r.started:
		return errors.New("checkpoint receiver: already started")
	}
	r.started = true
	r.client.Connect()
	return nil
}

// Close disconnects and waits for the envelopes being handled. Manifest
// parts held for the rest are dropped: the vehicle sends them again.
func (r *Receiver) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	redialErr := r.redial.Close(ctx)
	r.client.Disconnect(250)
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return redialErr
	case <-ctx.Done():
		return fmt.Errorf("checkpoint receiver: close: %w", ctx.Err())
	}
}

// Stats returns the receiver's figures.
func (r *Receiver) Stats() ReceiverStats {
	s := ReceiverStats{
		Received: r.received.Load(), Stored: r.stored.Load(), Duplicate: r.duplicate.Load(), Parts: r.parts.Load(),
		Complete: r.complete.Load(), Missing: r.missing.Load(), Refused: r.refused.Load(), Failed: r.failed.Load(),
		AckErrors: r.ackErrors.Load(), BadTopic: r.badTopic.Load(), Connects: r.connects.Load(), Subscribed: r.subscribed.Load(),
		RefusedBy: map[string]uint64{},
	}
	r.reasonsMu.Lock()
	for k, v := range r.reasons {
		s.RefusedBy[k] = v
	}
	r.reasonsMu.Unlock()
	return s
}

func (r *Receiver) onConnect(c mqtt.Client) {
	r.connects.Add(1)
	if err := mqttsub.Subscribe(c, map[string]byte{r.filter: 1}, r.onMessage, r.cfg.ConnectTimeout); err != nil {
		r.log.Error("subscribe failed; dropping the connection to retry", zap.String("topic", r.filter), zap.Error(err))
		r.redial.Redial(c)
		return
	}
	r.subscribed.Store(true)
	r.log.Info("subscribed", zap.String("topic", r.filter))
}

func (r *Receiver) onMessage(c mqtt.Client, m mqtt.Message) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	defer m.Ack()
	vehicle, ack, ok := r.Handle(context.Background(), m.Topic(), m.Payload())
	if !ok {
		return
	}
	payload, err := EncodeAck(ack)
	if err != nil {
		r.ackErrors.Add(1)
		r.log.Error("encode checkpoint ack", zap.Error(err))
		return
	}
	t := c.Publish(AckTopic(vehicle), 1, false, payload)
	if !t.WaitTimeout(r.cfg.PublishTimeout) || t.Error() != nil {
		// The vehicle sends again at its ack timeout; storing is idempotent.
		r.ackErrors.Add(1)
		r.log.Warn("publish checkpoint ack failed", zap.String("vehicle", vehicle), zap.Error(t.Error()))
	}
}
