package runner

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
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/internal/pahostore"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// WatchConfig configures WatchReports.
type WatchConfig struct {
	// Broker is the broker URL: tcp://host:1883, or ssl://host:8883.
	Broker string
	// ClientID is the MQTT client id; empty means
	// vigil-rollout-<random>. The session is clean: the reports are
	// retained, and arrive again on each subscription.
	ClientID string
	// TLS, when set, secures the connection, with the operator's client
	// certificate for mutual TLS.
	TLS *tls.Config
	// ConnectTimeout bounds the connection and the subscription; 0 means
	// 10 s.
	ConnectTimeout time.Duration
	// Log receives connection events and undecodable reports; nil means
	// none.
	Log *zap.Logger
}

// ReportWatcher holds every vehicle's latest deploy report, from a
// subscription to deploywire.ReportFilter on a connection of its own. It
// is Run's Reports.
type ReportWatcher struct {
	cfg     WatchConfig
	log     *zap.Logger
	client  mqtt.Client
	changed chan struct{}
	redial  mqttsub.Redialer
	ready   chan error

	mu        sync.Mutex
	latest    map[string]deploywire.Report
	bad       int
	firstDone bool
	closed    bool
}

// WatchReports connects and subscribes; it returns once the subscription
// stands. The connection reconnects by itself and subscribes again. Close
// it.
func WatchReports(ctx context.Context, cfg WatchConfig) (*ReportWatcher, error) {
	if cfg.Broker == "" {
		return nil, errors.New("runner: reports: no broker URL")
	}
	if cfg.ClientID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.ClientID = "vigil-rollout-" + hex.EncodeToString(b[:])
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	w := &ReportWatcher{cfg: cfg, log: log.Named("rollout.reports"), changed: make(chan struct{}, 1),
		ready: make(chan error, 1), latest: map[string]deploywire.Report{}}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(true).
		SetStore(pahostore.Null{}).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(10 * time.Second).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(cfg.ConnectTimeout).
		SetOnConnectHandler(w.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			w.log.Warn("connection lost; reconnecting", zap.Error(err))
		})
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	w.client = mqtt.NewClient(opts)
	t := w.client.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		w.Close(context.Background())
		return nil, fmt.Errorf("runner: reports: connect to %s: %w", cfg.Broker, ctx.Err())
	}
	if err := t.Error(); err != nil {
		w.Close(context.Background())
		return nil, fmt.Errorf("runner: reports: connect to %s: %w", cfg.Broker, err)
	}
	var err error
	select {
	case err = <-w.ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		w.Close(context.Background())
		return nil, fmt.Errorf("runner: reports: subscribe to %s on %s: %w", deploywire.ReportFilter, cfg.Broker, err)
	}
	return w, nil
}

func (w *ReportWatcher) onConnect(c mqtt.Client) {
	err := mqttsub.Subscribe(c, map[string]byte{deploywire.ReportFilter: 1}, w.onMessage, w.cfg.ConnectTimeout)
	w.mu.Lock()
	first := !w.firstDone
	w.firstDone = true
	closed := w.closed
	w.mu.Unlock()
	switch {
	case first:
		w.ready <- err
	case err != nil && !closed:
		w.log.Error("subscribe failed after reconnecting; reconnecting again", zap.Error(err))
		w.redial.Redial(c)
	}
}

func (w *ReportWatcher) onMessage(_ mqtt.Client, m mqtt.Message) {
	vehicle, ok := deploywire.VehicleFromReportTopic(m.Topic())
	if !ok || len(m.Payload()) == 0 {
		return // not a vehicle's topic, or a retained report cleared
	}
	rep, err := deploywire.DecodeReport(m.Payload())
	if err == nil && rep.Vehicle != vehicle {
		err = fmt.Errorf("report of %q on %s", rep.Vehicle, m.Topic())
	}
	w.mu.Lock()
	if err != nil {
		w.bad++
		w.mu.Unlock()
		w.log.Warn("deploy report refused", zap.String("vehicle", vehicle), zap.Error(err))
		return
	}
	if old, ok := w.latest[vehicle]; !ok || !rep.Updated.Before(old.Updated) {
		w.latest[vehicle] = rep
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Latest returns each vehicle's latest report, by vehicle id.
func (w *ReportWatcher) Latest() []deploywire.Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]deploywire.Report, 0, len(w.latest))
	for _, r := range w.latest {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Vehicle < out[j].Vehicle })
	return out
}

// Changed is signalled after a report arrives.
func (w *ReportWatcher) Changed() <-chan struct{} { return w.changed }

// Refused counts the reports that did not decode, or came on another
// vehicle's topic.
func (w *ReportWatcher) Refused() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bad
}

// Close stops redialing (waiting for a redial in progress until ctx
// ends) and disconnects.
func (w *ReportWatcher) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	err := w.redial.Close(ctx)
	w.client.Disconnect(250)
	return err
}
