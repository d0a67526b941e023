package cmdlink

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/internal/pahostore"
)

// connConfig is what the Sender's and the Link's connections share.
type connConfig struct {
	broker, clientID, prefix string
	tls                      *tls.Config
	connectTimeout           time.Duration
	keepAlive                time.Duration
	filters                  map[string]byte
	handler                  mqtt.MessageHandler
	subscribed               func() // after each successful subscription
	log                      *zap.Logger
}

// conn is a clean-session paho client that subscribes its filters on
// every connection.
type conn struct {
	cfg    connConfig
	client mqtt.Client
	ready  chan error // the first subscription's outcome
	redial mqttsub.Redialer

	mu        sync.Mutex
	firstDone bool
	closed    bool
}

func checkBroker(broker string) error {
	u, err := url.Parse(broker)
	if err != nil || broker == "" || u.Host == "" {
		return fmt.Errorf("bad broker URL %q: want scheme://host:port, e.g. ssl://broker:8883 or tcp://localhost:1883", broker)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps", "ws", "wss":
	default:
		return fmt.Errorf("bad broker URL %q: scheme %q: want tcp, mqtt, ssl, tls, mqtts, ws or wss", broker, u.Scheme)
	}
	return nil
}

// dial connects and returns once the filters are subscribed.
func dial(ctx context.Context, cfg connConfig) (*conn, error) {
	if err := checkBroker(cfg.broker); err != nil {
		return nil, err
	}
	if cfg.clientID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.clientID = cfg.prefix + hex.EncodeToString(b[:])
	}
	if cfg.connectTimeout <= 0 {
		cfg.connectTimeout = 10 * time.Second
	}
	if cfg.keepAlive <= 0 {
		cfg.keepAlive = 30 * time.Second
	}
	c := &conn{cfg: cfg, ready: make(chan error, 1)}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.broker).
		SetClientID(cfg.clientID).
		SetCleanSession(true).
		SetStore(pahostore.Null{}).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(10 * time.Second).
		SetConnectTimeout(cfg.connectTimeout).
		SetKeepAlive(cfg.keepAlive).
		SetPingTimeout(min(cfg.keepAlive, 10*time.Second)).
		SetWriteTimeout(cfg.connectTimeout).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			cfg.log.Warn("connection lost; reconnecting", zap.Error(err))
		})
	if cfg.tls != nil {
		opts.SetTLSConfig(cfg.tls)
	}
	c.client = mqtt.NewClient(opts)
	t := c.client.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		c.close(context.Background())
		return nil, fmt.Errorf("connect to %s: %w", cfg.broker, ctx.Err())
	}
	if err := t.Error(); err != nil {
		c.close(context.Background())
		return nil, fmt.Errorf("connect to %s: %w", cfg.broker, err)
	}
	var err error
	select {
	case err = <-c.ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		c.close(context.Background())
		return nil, fmt.Errorf("subscribe on %s: %w", cfg.broker, err)
	}
	return c, nil
}

func (c *conn) onConnect(cl mqtt.Client) {
	err := mqttsub.Subscribe(cl, c.cfg.filters, c.cfg.handler, c.cfg.connectTimeout)
	if err == nil && c.cfg.subscribed != nil {
		c.cfg.subscribed()
	}
	c.mu.Lock()
	first := !c.firstDone
	c.firstDone = true
	closed := c.closed
	c.mu.Unlock()
	switch {
	case first:
		c.ready <- err
	case err != nil && !closed:
		c.cfg.log.Error("subscribe failed after reconnecting; reconnecting again", zap.Error(err))
		c.redial.Redial(cl)
	default:
		c.cfg.log.Info("reconnected and subscribed")
	}
}

// publish publishes at QoS 1 and waits for the PUBACK until ctx ends.
func (c *conn) publish(ctx context.Context, topic string, payload []byte) error {
	t := c.client.Publish(topic, 1, false, payload)
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("publish on %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish on %s: no PUBACK: %w", topic, ctx.Err())
	}
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// close stops redialing (waiting for a redial in progress until ctx ends)
// and disconnects.
func (c *conn) close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.redial.Close(ctx)
	c.client.Disconnect(250)
	return err
}
