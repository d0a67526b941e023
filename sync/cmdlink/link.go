package cmdlink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
)

// LinkConfig configures a Link.
type LinkConfig struct {
	// Broker is the broker URL.
	Broker string
	// ClientID is the MQTT client id; empty means vigil-cmd-<random>. It
	// must differ from the uploader's.
	ClientID string
	// TLS, when set, secures the connection, with the vehicle's client
	// certificate for mutual TLS.
	TLS *tls.Config
	// ConnectTimeout bounds the connection and the subscription; 0 means
	// 10 s.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration
	// PublishTimeout bounds the wait for a PUBACK; 0 means 10 s.
	PublishTimeout time.Duration
	// Log receives connection events; nil means none.
	Log *zap.Logger
}

// Link is a minimal edge-side MQTT connection for a Receiver: a clean
// session that subscribes to the receiver's topics at QoS 1 on every
// connection and publishes its responses. It is for tests and for
// running the command channel apart from the uploader; in vigild the
// receiver belongs on the uploader's own connection (its Subscriptions
// and Publish), so that the vehicle keeps one session and one identity
// at the broker. Wiring:
//
//	var link *cmdlink.Link
//	r, err := cmdlink.NewReceiver(cmdlink.Config{..., Publish: func(t string, p []byte) error { return link.Publish(t, p) }})
//	link, err = cmdlink.DialLink(ctx, lcfg, r.Topics(), r.Handle)
//	err = r.Start(ctx) // after link is set: the worker is what calls Publish
type Link struct {
	cfg LinkConfig
	c   *conn
}

// DialLink connects and subscribes topics with handler; it returns once
// the subscription stands. The handler runs on paho's router goroutine,
// one message at a time, and must not block for long (Receiver.Handle
// returns once the message is checked, about 75 µs).
func DialLink(ctx context.Context, cfg LinkConfig, topics []string, handler func(topic string, payload []byte)) (*Link, error) {
	if len(topics) == 0 || handler == nil {
		return nil, errors.New("cmdlink: link: no topics or no handler")
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	filters := map[string]byte{}
	for _, t := range topics {
		filters[t] = 1
	}
	c, err := dial(ctx, connConfig{
		broker: cfg.Broker, clientID: cfg.ClientID, prefix: "vigil-cmd-", tls: cfg.TLS,
		connectTimeout: cfg.ConnectTimeout, keepAlive: cfg.KeepAlive, filters: filters,
		handler: func(_ mqtt.Client, m mqtt.Message) { handler(m.Topic(), m.Payload()) },
		log:     log.Named("cmdlink.link"),
	})
	if err != nil {
		return nil, fmt.Errorf("cmdlink: link: %w", err)
	}
	return &Link{cfg: cfg, c: c}, nil
}

// Publish publishes at QoS 1 and waits up to PublishTimeout for the
// PUBACK: the Receiver's Config.Publish.
func (l *Link) Publish(topic string, payload []byte) error {
	if l.c.isClosed() {
		return errors.New("cmdlink: link closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	if err := l.c.publish(ctx, topic, payload); err != nil {
		return fmt.Errorf("cmdlink: %w", err)
	}
	return nil
}

// Close disconnects; ctx bounds the wait for a reconnection in progress.
func (l *Link) Close(ctx context.Context) error { return l.c.close(ctx) }
