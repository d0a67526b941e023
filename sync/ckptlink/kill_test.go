package ckptlink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/sink"
)

// The kill tests run one end of the checkpoint upload in a child process
// (this test binary again, told what to be by these variables: see
// TestMain) and kill it with SIGKILL mid-upload.
const (
	killChildEnv  = "VIGIL_CKPTLINK_KILL_CHILD" // "receiver" or "vehicle"
	killDirEnv    = "VIGIL_CKPTLINK_KILL_DIR"   // the child's data directory
	killBrokerEnv = "VIGIL_CKPTLINK_KILL_BROKER"
	killReadyEnv  = "VIGIL_CKPTLINK_KILL_READY" // a file the receiver creates once subscribed
)

const (
	// killFill records of killRecordBytes: a full checkpoint of some 20
	// chunks, about 2 MB (the store's segments compress these records
	// about 3 to 1).
	killFill        = 6000
	killRecordBytes = 1000
	// killRate caps the vehicle's uplink (bytes per second): the upload
	// takes seconds, so a kill lands in its middle.
	killRate = 200 << 10
	// killStream is the stream the tests fill (none of the store's own
	// notices go to it).
	killStream = storage.StreamInference
)

// killChild is TestMain's in a child process: it runs the end named by
// mode until it is killed (the receiver) or its upload completes (the
// vehicle), and returns the exit code.
func killChild(mode string) int {
	dir, broker := os.Getenv(killDirEnv), os.Getenv(killBrokerEnv)
	var err error
	switch mode {
	case "receiver":
		err = receiverChild(dir, broker, os.Getenv(killReadyEnv))
	case "vehicle":
		err = vehicleChild(dir, broker)
	default:
		err = fmt.Errorf("unknown %s %q", killChildEnv, mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		return 2
	}
	return 0
}

func childLog() *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l
}

// killRecord is record seq's payload: telemetry-like text, compressible
// (about 3 to 1) but not trivially, and the same for the same seq.
func killRecord(seq uint64) []byte {
	rng := rand.New(rand.NewPCG(seq, 0x5eed))
	classes := []string{"car", "truck", "pedestrian", "cyclist", "sign", "light"}
	b := fmt.Appendf(nil, `{"seq":%d,"objects":[`, seq)
	for len(b) < killRecordBytes {
		b = fmt.Appendf(b, `{"id":%d,"class":%q,"x":%.3f,"y":%.3f,"conf":%.4f},`,
			rng.IntN(512), classes[rng.IntN(len(classes))], rng.Float64()*80, rng.Float64()*20-10, rng.Float64())
	}
	return b[:killRecordBytes]
}

// appendRecord appends the next record of killStream and says whether
// the store gave it the seq its payload was made for.
func appendRecord(s *storage.Store) error {
	st := s.Stream(killStream)
	want := st.Assigned() + 1
	seq, ok := st.Append(killRecord(want))
	switch {
	case !ok:
		return fmt.Errorf("append %s %d refused", killStream, want)
	case seq != want:
		return fmt.Errorf("append %s: made for seq %d, stored as %d", killStream, want, seq)
	}
	return nil
}

// fillStore appends n records and waits until they are durable.
func fillStore(ctx context.Context, s *storage.Store, n int) error {
	for range n {
		if err := appendRecord(s); err != nil {
			return err
		}
	}
	st := s.Stream(killStream)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return st.WaitDurable(ctx, st.Assigned())
}

// edgeConfig is the vehicle's link to broker, with subs.
func edgeConfig(s *storage.Store, broker string, rate int, subs ...edge.Subscription) edge.Config {
	return edge.Config{Broker: broker, Vehicle: vehicle, Boot: s.Boot(), MaxBytesPerSecond: rate, Subscriptions: subs,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second}
}

// drainTelemetry uploads the store's records at full speed until the
// ingester acknowledged them all, so that the rate-capped link that
// follows carries the checkpoint (bulk traffic waits behind telemetry).
func drainTelemetry(ctx context.Context, s *storage.Store, broker string, log *zap.Logger) error {
	up, err := edge.New(edgeConfig(s, broker, 0), s, log)
	if err != nil {
		return err
	}
	if err := up.Start(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for up.State() != edge.Live && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	live := up.State() == edge.Live
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := up.Close(cctx); err != nil {
		return err
	}
	if !live {
		return errors.New("telemetry not drained in 30 s")
	}
	return nil
}

// receiverChild runs a Receiver on the blob store and catalog under dir
// until it is killed; it creates ready once subscribed.
func receiverChild(dir, broker, ready string) error {
	blobs, err := blob.NewDir(dir)
	if err != nil {
		return err
	}
	catalog, err := blob.NewCatalog(dir)
	if err != nil {
		return err
	}
	rc, err := NewReceiver(ReceiverConfig{Broker: broker, Blobs: blobs, Catalog: catalog, Log: childLog(),
		ConnectTimeout: 2 * time.Second, ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := rc.Start(context.Background()); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for !rc.Stats().Subscribed {
		if time.Now().After(deadline) {
			return errors.New("receiver not subscribed in 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		return err
	}
	for {
		time.Sleep(time.Hour) // until killed
	}
}

// child is a child process of this test binary.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr bytes.Buffer // read only after done
	done   chan struct{}
	err    error // Wait's
}

func startChild(t *testing.T, mode, dir, broker string, env ...string) *child {
	t.Helper()
	c := &child{t: t, cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), append(env, killChildEnv+"="+mode, killDirEnv+"="+dir, killBrokerEnv+"="+broker)...)
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.cmd.Process.Kill() //nolint:errcheck // gone already, or going
		<-c.done
	})
	return c
}

// kill kills the child with SIGKILL and waits until it is gone.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill the child: %v", err)
	}
	<-c.done
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("the child was not killed by SIGKILL but ended: %v\n%s", c.err, c.stderr.String())
	}
}

// wait waits up to d for the child to exit, and fails unless it exits 0.
func (c *child) wait(d time.Duration) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		c.cmd.Process.Kill() //nolint:errcheck // see below
		<-c.done
		c.t.Fatalf("the child did not finish in %v:\n%s", d, c.stderr.String())
	}
	if c.err != nil {
		c.t.Fatalf("the child failed: %v\n%s", c.err, c.stderr.String())
	}
}

// startReceiverChild starts a Receiver in a child process on the cloud
// store under root and waits until it is subscribed.
func startReceiverChild(t *testing.T, root, broker string) *child {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	c := startChild(t, "receiver", root, broker, killReadyEnv+"="+ready)
	waitUntil(t, 20*time.Second, "the receiver child subscribed", func() bool {
		select {
		case <-c.done:
			t.Fatalf("the receiver child ended: %v\n%s", c.err, c.stderr.String())
		default:
		}
		_, err := os.Stat(ready)
		return err == nil
	})
	return c
}

// startKillIngester runs the telemetry ingester into a sink it returns.
func startKillIngester(t *testing.T, broker *mqtttest.Broker) *sink.Sink {
	t.Helper()
	sk, err := sink.Open(filepath.Join(t.TempDir(), "sink"), sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ingest.Config{Broker: broker.URL(), ClientID: "ingest-kill", ConnectTimeout: 2 * time.Second,
		ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second}, sk, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWithin(t, "ingester", in.Close) })
	return sk
}

// checkCloudStore: the catalog holds m, whose every chunk verifies in
// the blob store; every file in the blob store is a temporary file or
// a whole blob under its own name, and every manifest in the catalog
// parses: nothing half written under a real name.
func checkCloudStore(t *testing.T, root string, m *manifest.Manifest) {
	t.Helper()
	blobs, err := blob.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := blob.NewCatalog(root)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := catalog.Raw(vehicle, m.StoreID, m.ID)
	if err != nil {
		t.Fatalf("the catalog lacks checkpoint %s: %v", m.ID, err)
	}
	got, err := manifest.Parse(raw, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := manifest.Verify(context.Background(), blob.Source(context.Background(), blobs), got); err != nil {
		t.Fatalf("checkpoint %s in the cloud: %v", m.ID, err)
	}
	temps, whole := 0, 0
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		switch {
		case err != nil || !e.Type().IsRegular():
			return err
		case strings.HasPrefix(e.Name(), ".tmp-"):
			temps++
		case strings.HasSuffix(e.Name(), ".json"):
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			id := strings.TrimSuffix(e.Name(), ".json")
			if _, err := manifest.Parse(b, id); err != nil {
				t.Errorf("catalog file %s: %v", path, err)
			}
		case manifest.ValidHash(e.Name()):
			if err := blob.Verify(context.Background(), blobs, e.Name()); err != nil {
				t.Errorf("blob file %s: %v", path, err)
			}
			whole++
		default:
			t.Errorf("unexpected file %s in the cloud store", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cloud store: %d whole blobs, %d temporary files (prune's RemoveTemp clears them)", whole, temps)
}

// startCappedUploader starts the rig's uploader under a rate cap, with
// the ack subscription routed to the rig's current shipper.
func (r *rig) startCappedUploader(rate int) {
	r.t.Helper()
	h := func(topic string, p []byte) {
		if sh := r.cur.Load(); sh != nil {
			sh.onAck(topic, p)
		}
	}
	up, err := edge.New(edgeConfig(r.store, r.broker.URL(), rate, edge.Subscription{Topic: AckTopic(vehicle), Handler: h}), r.store, logger(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := up.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { closeWithin(r.t, "uploader", up.Close) })
	r.up = up
}

// killInFlight kills the receiver child while a chunk is published and
// not yet acknowledged, if one is caught within 5 s, else at once.
func killInFlight(sh *Shipper, rc *child) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st := sh.Stats()
		if len(st.Checkpoints) == 1 && st.ChunksSent > uint64(st.Checkpoints[0].Acked) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	rc.kill()
}

// TestKillReceiverMidUpload: the cloud end, a Receiver in another
// process, is killed with SIGKILL while a checkpoint uploads over a
// rate-capped link, and a new one started on the same blob store and
// catalog. The upload completes; only chunks not acknowledged at the
// kill go again (no more than the window, and a few); the checkpoint
// verifies in the cloud, and nothing half written is left under a real
// name there.
func TestKillReceiverMidUpload(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	if err := fillStore(ctx, r.store, killFill); err != nil {
		t.Fatal(err)
	}
	m := r.take(manifest.Full)
	if len(m.Chunks) < 16 {
		t.Fatalf("%d chunks; the test wants 16 or more", len(m.Chunks))
	}
	startKillIngester(t, r.broker)
	if err := drainTelemetry(ctx, r.store, r.broker.URL(), logger(t)); err != nil {
		t.Fatal(err)
	}
	rc := startReceiverChild(t, r.root, r.broker.URL())
	r.startCappedUploader(killRate)
	sh := r.startShipper(nil)
	r.waitAcked(m, len(m.Chunks)/4)
	killInFlight(sh, rc)
	acked := r.ackedNow(m)
	if len(acked) == len(m.Chunks) {
		t.Fatal("the upload finished before the receiver was killed")
	}
	time.Sleep(300 * time.Millisecond) // chunks go into the void meanwhile
	startReceiverChild(t, r.root, r.broker.URL())
	r.checkResentOnlyMissing(m, acked)
	r.sentMu.Lock()
	again := 0
	for _, n := range r.sends {
		if n > 1 {
			again++
		}
	}
	r.sentMu.Unlock()
	if limit := DefaultWindow + 2; again > limit {
		t.Errorf("%d chunks sent again; at most %d (the window, and a few) were unacknowledged at the kill", again, limit)
	}
	checkCloudStore(t, r.root, m)
	st := sh.Stats()
	t.Logf("receiver killed with %d of %d chunks (%d bytes compressed) acknowledged; %d chunks sent again (%d resends)",
		len(acked), len(m.Chunks), m.Bytes, again, st.ChunksResent)
}

// markName is the file in the vehicle child's directory where it keeps
// its stream's durable high (written after each record became durable):
// every record up to it must survive the kill.
const markName = "durable"

func writeMark(dir string, seq uint64) error {
	tmp := filepath.Join(dir, "."+markName+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, markName))
}

func readMark(t *testing.T, dir string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, markName))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		t.Fatalf("durable mark %q: %v", b, err)
	}
	return n
}

// vehicleChild is vigild's part of the upload: the store under dir/store,
// its checkpoints under dir/checkpoints, an uploader capped at killRate
// and a shipper. The first run fills the store, takes a full checkpoint
// and drains the telemetry; every run appends a record each 20 ms while
// the checkpoint uploads, and exits once it is complete in the cloud.
func vehicleChild(dir, broker string) (err error) {
	ctx := context.Background()
	log := childLog()
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(dir, "store")
	s, err := storage.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(ctx); err == nil {
			err = cerr
		}
	}()
	ckpts := filepath.Join(dir, "checkpoints")
	ms, err := manifest.List(ckpts)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		if err := fillStore(ctx, s, killFill); err != nil {
			return err
		}
		m, err := checkpoint.Take(ctx, s, checkpoint.Options{Dir: ckpts, Kind: manifest.Full, Vehicle: vehicle, Created: time.Now()})
		if err != nil {
			return err
		}
		if err := drainTelemetry(ctx, s, broker, log); err != nil {
			return err
		}
		ms = append(ms, m)
	}
	stop, trickled := make(chan struct{}), make(chan error, 1)
	go func() { trickled <- trickle(s, dir, stop) }()
	err = shipUntilUploaded(ctx, s, broker, ckpts, ms[0].ID, log)
	close(stop)
	if terr := <-trickled; err == nil {
		err = terr
	}
	return err
}

// trickle appends a record each 20 ms until stop, keeping the durable
// mark; at stop it waits for its records to be durable.
func trickle(s *storage.Store, dir string, stop <-chan struct{}) error {
	st := s.Stream(killStream)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := st.WaitDurable(ctx, st.Assigned()); err != nil {
				return err
			}
			return writeMark(dir, st.Durable())
		case <-tick.C:
		}
		if err := writeMark(dir, st.Durable()); err != nil {
			return err
		}
		if err := appendRecord(s); err != nil {
			return err
		}
	}
}

// shipUntilUploaded runs the capped uploader and a shipper until
// checkpoint id is complete in the cloud.
func shipUntilUploaded(ctx context.Context, s *storage.Store, broker, ckpts, id string, log *zap.Logger) error {
	var up *edge.Uploader
	sh, err := NewShipper(ShipperConfig{Vehicle: vehicle, Dir: ckpts, Log: log, AckTimeout: 2 * time.Second,
		Link: linkFunc(func(ctx context.Context, topic string, p []byte) error { return up.PublishBulk(ctx, topic, p) })})
	if err != nil {
		return err
	}
	if up, err = edge.New(edgeConfig(s, broker, killRate, edge.Subscription(sh.Subscriptions()[0])), s, log); err != nil {
		return err
	}
	if err := up.Start(ctx); err != nil {
		return err
	}
	if err := sh.Start(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for !sh.Uploaded(id) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !sh.Uploaded(id) {
		err = fmt.Errorf("checkpoint %s not uploaded in 60 s: %+v", id, sh.Stats())
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, c := range []func(context.Context) error{sh.Close, up.Close} {
		if cerr := c(cctx); err == nil {
			err = cerr
		}
	}
	return err
}

// countingBlobs counts the Puts of each blob: a chunk the receiver
// handles is put (again, if stored).
type countingBlobs struct {
	blob.Store
	mu   sync.Mutex
	puts map[string]int
}

func (c *countingBlobs) Put(ctx context.Context, sum string, data []byte) error {
	c.mu.Lock()
	c.puts[sum]++
	c.mu.Unlock()
	return c.Store.Put(ctx, sum, data)
}

func (c *countingBlobs) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.puts))
	for k, v := range c.puts {
		out[k] = v
	}
	return out
}

// startCountingReceiver runs a Receiver in this process on the cloud
// store under root, counting its Puts.
func startCountingReceiver(t *testing.T, broker *mqtttest.Broker, root string) *countingBlobs {
	t.Helper()
	blobs, err := blob.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := blob.NewCatalog(root)
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingBlobs{Store: blobs, puts: map[string]int{}}
	rc, err := NewReceiver(ReceiverConfig{Broker: broker.URL(), Blobs: cb, Catalog: catalog, Log: logger(t),
		ConnectTimeout: 2 * time.Second, ReconnectMax: 300 * time.Millisecond, KeepAlive: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWithin(t, "receiver", rc.Close) })
	waitUntil(t, 10*time.Second, "receiver subscribed", func() bool { return rc.Stats().Subscribed })
	return cb
}

// uploadProgress is the vehicle's checkpoint and its persisted progress,
// read from the files; nil until both exist. A progress file that does
// not decode, or not as m's, fails the test: the shipper writes it
// whole or not at all.
func uploadProgress(t *testing.T, ckpts string) (*manifest.Manifest, *progress) {
	t.Helper()
	ms, err := manifest.List(ckpts)
	if err != nil || len(ms) == 0 {
		return nil, nil
	}
	m := ms[0]
	b, err := os.ReadFile(filepath.Join(ckpts, m.ID, ProgressName))
	if err != nil {
		return nil, nil
	}
	var p progress
	if err := json.Unmarshal(b, &p); err != nil || p.ID != m.ID || p.Store != m.StoreID || p.Chunks != len(m.Chunks) ||
		len(p.Acked) != (p.Chunks+7)/8 {
		t.Fatalf("checkpoint %s: progress file %q is not whole (%v)", m.ID, b, err)
	}
	return m, &p
}

// TestKillVehicleMidUpload: vigild's end (store, uploader, shipper) runs
// in another process and is killed with SIGKILL mid-upload, then started
// again on the same store and checkpoints. The upload completes and
// verifies in the cloud; no chunk acknowledged in the progress file at
// the kill is sent again; the store opens and serves, and every record
// durable before the kill is there (in the store, or in the cloud's sink
// once acknowledged), as the first run wrote it.
func TestKillVehicleMidUpload(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	dir, root := t.TempDir(), t.TempDir()
	sk := startKillIngester(t, broker)
	cb := startCountingReceiver(t, broker, root)
	first := startChild(t, "vehicle", dir, broker.URL())
	ckpts := filepath.Join(dir, "checkpoints")
	var m *manifest.Manifest
	waitUntil(t, 60*time.Second, "a quarter of the chunks acknowledged", func() bool {
		select {
		case <-first.done:
			t.Fatalf("the vehicle child ended: %v\n%s", first.err, first.stderr.String())
		default:
		}
		var p *progress
		m, p = uploadProgress(t, ckpts)
		return p != nil && p.count() >= len(m.Chunks)/4
	})
	first.kill()
	mark := readMark(t, dir)
	putsAtKill := cb.snapshot()
	_, p := uploadProgress(t, ckpts)
	if p == nil || p.count() == len(m.Chunks) {
		t.Fatal("the upload finished before the vehicle was killed")
	}
	startChild(t, "vehicle", dir, broker.URL()).wait(90 * time.Second)

	checkCloudStore(t, root, m)
	puts := cb.snapshot()
	resent, ackedAtKill := 0, 0
	unacked := map[string]bool{}
	for i, c := range m.Chunks {
		if !p.acked(i) {
			unacked[c.SHA256] = true
		}
	}
	for i, c := range m.Chunks {
		switch {
		case puts[c.SHA256] == 0:
			t.Errorf("chunk %d never reached the cloud", i)
		case !p.acked(i):
			if putsAtKill[c.SHA256] > 0 && puts[c.SHA256] > putsAtKill[c.SHA256] {
				resent++
			}
		case unacked[c.SHA256]:
			ackedAtKill++ // its bytes are also an unacknowledged chunk's
		default:
			ackedAtKill++
			if n := puts[c.SHA256] - putsAtKill[c.SHA256]; n > 0 {
				t.Errorf("chunk %d, acknowledged before the kill, sent %d times after it", i, n)
			}
		}
	}
	checkStoreAfterKill(t, dir, sk, mark)
	t.Logf("vehicle killed with %d of %d chunks acknowledged in its progress file, %d records durable; "+
		"%d chunks the cloud had received but not acknowledged went again", ackedAtKill, len(m.Chunks), mark, resent)
}

// checkStoreAfterKill opens the vehicle's store: every record of
// killStream up to the final durable mark is in it or in the sink, as
// killRecord made it, and those up to mark (durable at the kill) from
// the first run's boot; the store takes a record and reads it back.
func checkStoreAfterKill(t *testing.T, dir string, sk *sink.Sink, mark uint64) {
	t.Helper()
	final := readMark(t, dir)
	if mark < killFill || final < mark {
		t.Fatalf("durable marks: %d at the kill, %d at the end; want at least %d, rising", mark, final, killFill)
	}
	type rec struct {
		boot    uint32
		payload []byte
	}
	got := map[uint64]rec{}
	cloud, err := sk.ReadStream(vehicle, killStream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cloud {
		got[r.Seq] = rec{r.Boot, r.Payload}
	}
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(dir, "store")
	s, err := storage.Open(context.Background(), cfg, logger(t))
	if err != nil {
		t.Fatalf("the store does not open after the kill: %v", err)
	}
	defer s.Close(context.Background())
	local, err := s.Read(killStream, 0, 1<<30, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range local {
		got[r.Seq] = rec{r.Boot, r.Payload}
	}
	boot := got[1].boot
	for seq := uint64(1); seq <= final; seq++ {
		r, ok := got[seq]
		switch {
		case !ok:
			t.Errorf("%s record %d (durable by the end; at the kill through %d) lost", killStream, seq, mark)
		case !bytes.Equal(r.payload, killRecord(seq)):
			t.Errorf("%s record %d holds %.40q…, not its payload", killStream, seq, r.payload)
		case seq <= mark && r.boot != boot:
			t.Errorf("%s record %d, durable at the kill, is of boot %d, not the first run's %d", killStream, seq, r.boot, boot)
		}
	}
	if err := appendRecord(s); err != nil {
		t.Fatal(err)
	}
	st := s.Stream(killStream)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitDurable(ctx, st.Assigned()); err != nil {
		t.Fatal(err)
	}
	back, err := s.Read(killStream, st.Assigned()-1, 1, 1<<20)
	if err != nil || len(back) != 1 || !bytes.Equal(back[0].Payload, killRecord(st.Assigned())) {
		t.Fatalf("the store does not read back the record appended after the kill: %v, %d records", err, len(back))
	}
	t.Logf("records: %d in the cloud's sink, %d in the store; durable through %d at the kill, %d at the end", len(cloud), len(local), mark, final)
}
