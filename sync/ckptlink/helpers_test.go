package ckptlink

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/sink"
)

const vehicle = "veh-1"

// Subscription converts to edge.Subscription, as the agent does.
var _ = edge.Subscription(Subscription{})

func logger(t *testing.T) *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)) }

// rig is a vehicle (a store, its checkpoints, an uploader and a shipper)
// and the cloud's checkpoint store and receiver, around a real broker.
type rig struct {
	t       *testing.T
	broker  *mqtttest.Broker
	store   *storage.Store
	dir     string // the checkpoints
	root    string // the cloud's checkpoint store
	blobs   *blob.Dir
	catalog *blob.Catalog
	up      *edge.Uploader
	ship    *Shipper
	recv    *Receiver
	pki     *mqtttest.PKI // nil: plain TCP
	cur     atomic.Pointer[Shipper]
	sentMu  sync.Mutex
	sends   map[int]int // chunk index → times published
}

func newRig(t *testing.T) *rig { return newRigOn(t, nil) }

// newRigOn is a rig whose broker uses pki's TLS and enforces
// mqtttest.FleetACL (plain TCP without an ACL when pki is nil).
func newRigOn(t *testing.T, pki *mqtttest.PKI) *rig {
	t.Helper()
	opts := mqtttest.Options{}
	if pki != nil {
		opts = mqtttest.Options{TLS: pki, ACL: mqtttest.FleetACL}
	}
	r := &rig{t: t, pki: pki, broker: mqtttest.Start(t, opts), dir: filepath.Join(t.TempDir(), "checkpoints"), root: t.TempDir()}
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "db")
	s, err := storage.Open(context.Background(), cfg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	r.store = s
	if r.blobs, err = blob.NewDir(r.root); err != nil {
		t.Fatal(err)
	}
	if r.catalog, err = blob.NewCatalog(r.root); err != nil {
		t.Fatal(err)
	}
	return r
}

// appendRandom appends n incompressible records of size bytes.
func (r *rig) appendRandom(n, size int) {
	st := r.store.Stream(storage.StreamEvents)
	for range n {
		p := make([]byte, size)
		rand.Read(p)
		if _, ok := st.Append(p); !ok {
			r.t.Fatal("append refused")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Durable() != st.Assigned() {
		if time.Now().After(deadline) {
			r.t.Fatal("records never durable")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) take(k manifest.Kind) *manifest.Manifest {
	r.t.Helper()
	m, err := checkpoint.Take(context.Background(), r.store, checkpoint.Options{Dir: r.dir, Kind: k, Vehicle: vehicle, Created: time.Now()})
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func closeWithin(t *testing.T, what string, close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := close(ctx); err != nil {
		t.Errorf("%s Close: %v", what, err)
	}
}

// startVehicle starts the uploader (with the shipper's subscription,
// routed to the rig's current shipper) and a shipper; rate caps the
// uploader's bytes per second (0: none).
func (r *rig) startVehicle(tune func(*ShipperConfig), rate ...int) {
	r.t.Helper()
	h := func(topic string, p []byte) {
		if sh := r.cur.Load(); sh != nil {
			sh.onAck(topic, p)
		}
	}
	cfg := edge.Config{Broker: r.broker.URL(), Vehicle: vehicle, Boot: r.store.Boot(),
		Subscriptions: []edge.Subscription{{Topic: AckTopic(vehicle), Handler: h}},
		ReconnectMin:  50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second,
		TLS: r.tls(vehicle)}
	if len(rate) > 0 {
		cfg.MaxBytesPerSecond = rate[0]
	}
	up, err := edge.New(cfg, r.store, logger(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	r.up = up
	if err := up.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "uploader", up.Close) })
	r.startIngester()
	r.startShipper(tune)
}

// startShipper starts a shipper over the rig's uploader, counting the
// chunks it publishes.
func (r *rig) startShipper(tune func(*ShipperConfig)) *Shipper {
	r.t.Helper()
	cfg := ShipperConfig{Vehicle: vehicle, Dir: r.dir, Link: linkFunc(func(ctx context.Context, topic string, p []byte) error {
		err := r.up.PublishBulk(ctx, topic, p)
		if e, derr := Decode(p); err == nil && derr == nil && e.Type == TypeChunk {
			r.sentMu.Lock()
			if r.sends == nil {
				r.sends = map[int]int{}
			}
			r.sends[e.Index]++
			r.sentMu.Unlock()
		}
		return err
	}), Log: logger(r.t), AckTimeout: 2 * time.Second}
	if tune != nil {
		tune(&cfg)
	}
	sh, err := NewShipper(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	var _ = edge.Subscription(sh.Subscriptions()[0])
	r.ship = sh
	r.cur.Store(sh)
	if err := sh.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "shipper", sh.Close) })
	return sh
}

// startIngester runs the telemetry ingester: the store's records go to
// the cloud, and checkpoints go behind them.
func (r *rig) startIngester() {
	sk, err := sink.Open(filepath.Join(r.t.TempDir(), "sink"), sink.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	in, err := ingest.New(ingest.Config{Broker: r.broker.URL(), ClientID: "ingest-a", ConnectTimeout: 2 * time.Second,
		ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second, TLS: r.tls("ingest")}, sk, logger(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "ingester", in.Close) })
}

// tls is the client TLS of identity cn on a TLS rig, else nil.
func (r *rig) tls(cn string) *tls.Config {
	if r.pki == nil {
		return nil
	}
	return r.pki.ClientTLS(cn)
}

type linkFunc func(ctx context.Context, topic string, p []byte) error

func (f linkFunc) PublishBulk(ctx context.Context, topic string, p []byte) error {
	return f(ctx, topic, p)
}

func (r *rig) startReceiver() *Receiver {
	r.t.Helper()
	rc, err := NewReceiver(ReceiverConfig{Broker: r.broker.URL(), Blobs: r.blobs, Catalog: r.catalog, Log: logger(r.t),
		ConnectTimeout: 2 * time.Second, ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second, TLS: r.tls("ingest")})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := rc.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "receiver", rc.Close) })
	waitUntil(r.t, 10*time.Second, "receiver subscribed", func() bool { return rc.Stats().Subscribed })
	r.recv = rc
	return rc
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
