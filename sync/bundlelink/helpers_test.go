package bundlelink

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/sink"
)

const vehicle = "veh-1"

// testChunk is the chunk size of the tests: a demo model of about 1 MB is
// some 62 chunks.
const testChunk = 16 << 10

// Subscription converts to edge.Subscription, as the agent does.
var _ = edge.Subscription(Subscription{})

// t0 is when the test bundles were made.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func logger(t *testing.T) *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)) }

// The signing key of the test bundles, the same in every process.
var (
	testPriv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	testPub  = testPriv.Public().(ed25519.PublicKey)
)

var models sync.Map // demo rollout name → its bytes

func demoModel(t testing.TB, name string) []byte {
	t.Helper()
	if b, ok := models.Load(name); ok {
		return b.([]byte)
	}
	b, err := demo.GenerateRollout(name)
	if err != nil {
		t.Fatal(err)
	}
	models.Store(name, b)
	return b
}

// testBundle is a signed bundle: the demo model named model as model.onnx,
// a note, and an empty file.
type testBundle struct {
	m     *bundle.Manifest
	hash  string
	files map[string][]byte
}

func makeBundle(t testing.TB, model string, version uint64) *testBundle {
	t.Helper()
	onnx := demoModel(t, model)
	c, err := bundle.ContractFromONNX(onnx)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{files: map[string][]byte{
		"model.onnx":       onnx,
		"notes/README.txt": []byte("the " + model + " model of the demo, for the bundle delivery tests\n"),
		"notes/empty":      {},
	}}
	var files []bundle.File
	for _, p := range []string{"model.onnx", "notes/README.txt", "notes/empty"} {
		files = append(files, bundle.File{Path: p, SHA256: sha256Hex(b.files[p]), Size: int64(len(b.files[p]))})
	}
	b.m = &bundle.Manifest{Format: bundle.FormatVersion, Name: "pilotnet", Version: version, Roles: []bundle.Role{bundle.RolePrimary},
		Model: "model.onnx", Contract: c, Files: files, MinVigil: "0.1.0", Providers: []string{"cpu"},
		Created: t0, Expires: t0.Add(365 * 24 * time.Hour)}
	if err := bundle.Sign(b.m, testPriv); err != nil {
		t.Fatal(err)
	}
	if b.hash, err = b.m.Hash(); err != nil {
		t.Fatal(err)
	}
	return b
}

// pack writes b as a tar into dir under name, by a rename (as an
// operator should).
func (b *testBundle) pack(t testing.TB, dir, name string) string {
	t.Helper()
	src := t.TempDir()
	for p, data := range b.files {
		path := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.Pack(&buf, b.m, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// policy is a vehicle's policy that b passes.
func policy(b *testBundle) bundle.Policy {
	return bundle.Policy{Trusted: []ed25519.PublicKey{testPub}, VigilVersion: "0.1.0", Providers: []string{"cpu"},
		Contracts: map[bundle.Role]bundle.Contract{bundle.RolePrimary: b.m.Contract}}
}

// checkStaged: res is b, verifying as the vehicle verifies it, its files
// b's bytes.
func checkStaged(t *testing.T, res *Result, b *testBundle) {
	t.Helper()
	if res.Hash != b.hash {
		t.Fatalf("staged %s, want %s", res.Hash, b.hash)
	}
	sb, err := bundle.Open(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if err := sb.Verify(policy(b), t0.Add(time.Hour)); err != nil {
		t.Fatalf("the staged bundle does not verify: %v", err)
	}
	for p, want := range b.files {
		got, err := os.ReadFile(filepath.Join(res.Dir, filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("staged %s: %d bytes (%v), want %d", p, len(got), err, len(want))
		}
	}
}

// readProgress reads a staging directory's progress file: the chunks it
// says are staged.
func readProgress(t *testing.T, staging, hash string) (map[int]bool, int) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(staging, hash, progressName))
	if os.IsNotExist(err) {
		return map[int]bool{}, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var p progressFile
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("%s: %v", progressName, err)
	}
	done := map[int]bool{}
	for i := range p.Chunks {
		if p.done(i) {
			done[i] = true
		}
	}
	return done, p.Chunks
}

// checkConsistent: every chunk the staging directory's bitmap holds is on
// disk as b's chunk table says (the staged state is never ahead of the
// disk); it returns those chunks.
func checkConsistent(t *testing.T, staging string, b *testBundle) map[int]bool {
	t.Helper()
	done, n := readProgress(t, staging, b.hash)
	if n == 0 {
		return done
	}
	x := b.index(t, testChunk)
	for i := range done {
		sp := x.Spans[i]
		f, err := os.Open(filepath.Join(staging, b.hash, stagedBundle, filepath.FromSlash(x.Manifest.Files[sp.File].Path)))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, sp.Size)
		_, err = f.ReadAt(buf, sp.Offset)
		f.Close()
		if err != nil || sha256.Sum256(buf) != x.Sums[i] {
			t.Errorf("chunk %d is marked staged but is not on disk (%v)", i, err)
		}
	}
	return done
}

func (b *testBundle) fsys() fstest.MapFS {
	m := fstest.MapFS{}
	for p, data := range b.files {
		m[p] = &fstest.MapFile{Data: data, Mode: 0o644}
	}
	return m
}

// index is b's index at chunkBytes, as the fleet side builds it.
func (b *testBundle) index(t *testing.T, chunkBytes int) *Index {
	t.Helper()
	x, err := BuildIndex(b.m, b.hash, b.fsys(), chunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// rig is a broker with the telemetry ingester, a bundle store and its
// server, and a vehicle: a store, its uploader and a fetcher whose
// requests are counted.
type rig struct {
	t        *testing.T
	broker   *mqtttest.Broker
	storeDir string
	store    *Store
	srv      *Server
	staging  string
	db       *storage.Store
	up       *edge.Uploader
	cur      atomic.Pointer[Fetcher]

	mu       sync.Mutex
	asked    map[int]int // chunk → times asked for
	index    int         // index requests
	requests int         // requests published
	reqBytes int         // bytes of the requests published
	taken    int         // bytes taken from the uplink's budget (TakeBulk)
}

func newRig(t *testing.T, opts mqtttest.Options) *rig {
	t.Helper()
	r := &rig{t: t, broker: mqtttest.Start(t, opts), storeDir: t.TempDir(), staging: filepath.Join(t.TempDir(), "staging"), asked: map[int]int{}}
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "db")
	db, err := storage.Open(context.Background(), cfg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	r.db = db
	return r
}

func closeWithin(t *testing.T, what string, close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := close(ctx); err != nil {
		t.Errorf("%s Close: %v", what, err)
	}
}

// startServer opens the store and starts a server on it.
func (r *rig) startServer() *Server {
	r.t.Helper()
	if r.store == nil {
		s, err := OpenStore(r.storeDir, logger(r.t))
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(func() { s.Close() })
		r.store = s
	}
	srv, err := NewServer(ServerConfig{Broker: r.broker.URL(), Store: r.store, Log: logger(r.t),
		ConnectTimeout: 2 * time.Second, ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "server", srv.Close) })
	waitUntil(r.t, 10*time.Second, "server subscribed", func() bool { return srv.Stats().Subscribed })
	r.srv = srv
	return srv
}

// startVehicle starts the telemetry ingester and the vehicle's uploader
// under rate (bytes per second; 0: no cap).
func (r *rig) startVehicle(rate int) {
	r.t.Helper()
	r.startIngester()
	r.startUploader(rate)
}

// startIngester runs the telemetry ingester: the uploader's records are
// acknowledged, and bulk traffic is not held behind them.
func (r *rig) startIngester() {
	r.t.Helper()
	sk, err := sink.Open(filepath.Join(r.t.TempDir(), "sink"), sink.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	in, err := ingest.New(ingest.Config{Broker: r.broker.URL(), ClientID: "ingest-a", ConnectTimeout: 2 * time.Second,
		ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second}, sk, logger(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "ingester", in.Close) })
}

// startUploader starts the vehicle's uploader under rate (0: no cap),
// its data subscription routed to the rig's current fetcher.
func (r *rig) startUploader(rate int) {
	r.t.Helper()
	h := func(topic string, p []byte) {
		if f := r.cur.Load(); f != nil {
			f.onData(topic, p)
		}
	}
	up, err := edge.New(vehicleLink(r.broker.URL(), r.db, rate, edge.Subscription{Topic: DataTopic(vehicle), Handler: h}), r.db, logger(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := up.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "uploader", up.Close) })
	r.up = up
}

// vehicleLink is the vehicle's link configuration.
func vehicleLink(broker string, db *storage.Store, rate int, sub edge.Subscription) edge.Config {
	return edge.Config{Broker: broker, Vehicle: vehicle, Boot: db.Boot(), MaxBytesPerSecond: rate, Subscriptions: []edge.Subscription{sub},
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second}
}

// fetcher makes the rig's current fetcher, its requests counted.
func (r *rig) fetcher(tune func(*FetcherConfig)) *Fetcher {
	r.t.Helper()
	cfg := FetcherConfig{Vehicle: vehicle, Dir: r.staging, ChunkBytes: testChunk, AnswerTimeout: time.Second, StallTimeout: 30 * time.Second,
		Log: logger(r.t), Link: testLink{take: r.take, publish: r.publish}}
	if tune != nil {
		tune(&cfg)
	}
	f, err := NewFetcher(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	var _ = edge.Subscription(f.Subscriptions()[0])
	r.cur.Store(f)
	return f
}

func (r *rig) publish(ctx context.Context, topic string, p []byte) error {
	err := r.up.PublishBulk(ctx, topic, p)
	if e, derr := Decode(p); err == nil && derr == nil {
		r.mu.Lock()
		r.requests++
		r.reqBytes += len(p)
		if e.Type == TypeGetChunks {
			for i := e.Index; i < e.Index+e.Count; i++ {
				r.asked[i]++
			}
		} else {
			r.index++
		}
		r.mu.Unlock()
	}
	return err
}

func (r *rig) take(ctx context.Context, n int) error {
	err := r.up.TakeBulk(ctx, n)
	if err == nil {
		r.mu.Lock()
		r.taken += n
		r.mu.Unlock()
	}
	return err
}

// uplink is the bytes of the requests published and the bytes taken
// from the uplink's budget beforehand.
func (r *rig) uplink() (requests, taken int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reqBytes, r.taken
}

// takeAsked returns the chunks asked for since the last call.
func (r *rig) takeAsked() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.asked
	r.asked = map[int]int{}
	return a
}

// published is the number of requests published.
func (r *rig) published() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// testLink is a Link of two functions; a nil one succeeds at once.
type testLink struct {
	take    func(ctx context.Context, n int) error
	publish func(ctx context.Context, topic string, p []byte) error
}

func (l testLink) TakeBulk(ctx context.Context, n int) error {
	if l.take == nil {
		return nil
	}
	return l.take(ctx, n)
}

func (l testLink) PublishBulk(ctx context.Context, topic string, p []byte) error {
	if l.publish == nil {
		return nil
	}
	return l.publish(ctx, topic, p)
}

// fetchAsync runs f.Fetch(hash) in the background.
func fetchAsync(f *Fetcher, hash string) <-chan fetchResult {
	ch := make(chan fetchResult, 1)
	go func() {
		res, err := f.Fetch(context.Background(), hash)
		ch <- fetchResult{res, err}
	}()
	return ch
}

type fetchResult struct {
	res *Result
	err error
}

func waitFetch(t *testing.T, ch <-chan fetchResult, d time.Duration) fetchResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("the fetch did not end in %v", d)
	}
	return fetchResult{}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
