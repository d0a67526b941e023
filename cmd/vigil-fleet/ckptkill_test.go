package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/ckptlink"
	vedge "github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/sink"
)

const (
	killVehicle = "veh-kill"
	killStream  = storage.StreamInference
	// killRate caps the vehicle's uplink (bytes per second): the
	// checkpoint (about 2 MB of chunks) takes seconds to upload.
	killRate = 200 << 10
)

// killPayload is record seq's payload: telemetry-like text, compressible
// about 3 to 1 but not trivially, the same for the same seq.
func killPayload(seq uint64) []byte {
	rng := rand.New(rand.NewPCG(seq, 0x5eed))
	classes := []string{"car", "truck", "pedestrian", "cyclist", "sign", "light"}
	b := fmt.Appendf(nil, `{"seq":%d,"objects":[`, seq)
	for len(b) < 1000 {
		b = fmt.Appendf(b, `{"id":%d,"class":%q,"x":%.3f,"y":%.3f,"conf":%.4f},`,
			rng.IntN(512), classes[rng.IntN(len(classes))], rng.Float64()*80, rng.Float64()*20-10, rng.Float64())
	}
	return b[:1000]
}

// killAppend appends the next record of killStream, made for the seq the
// store gives it.
func killAppend(s *storage.Store) error {
	st := s.Stream(killStream)
	want := st.Assigned() + 1
	if seq, ok := st.Append(killPayload(want)); !ok || seq != want {
		return fmt.Errorf("append %s %d: stored as %d (ok %v)", killStream, want, seq, ok)
	}
	return nil
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ingestProc is a `vigil-fleet ingest` process.
type ingestProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr lockedBuffer
	done   chan struct{}
	err    error // Wait's
}

// startIngestBin runs bin's ingest on sinkDir (checkpoints beside it) and
// waits until the ingester and the checkpoint receiver are subscribed.
func startIngestBin(t *testing.T, bin, broker, sinkDir string) *ingestProc {
	t.Helper()
	p := &ingestProc{t: t, done: make(chan struct{}), cmd: exec.Command(bin, "ingest", "--broker", broker, "--sink", sinkDir,
		"--client-id", "ingest-kill", "--replica", "ingest-kill", "--reconnect-max", "300ms", "--progress", "0")}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill() //nolint:errcheck // gone already, or going
		<-p.done
	})
	eventually(t, 20*time.Second, "the ingester and the checkpoint receiver subscribed", func() bool {
		select {
		case <-p.done:
			t.Fatalf("vigil-fleet ingest ended: %v\n%s", p.err, p.stderr.String())
		default:
		}
		return strings.Count(p.stderr.String(), "\tsubscribed\t") >= 2
	})
	return p
}

// signal sends sig and waits for the process to end.
func (p *ingestProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("vigil-fleet ingest still running 20 s after %v:\n%s", sig, p.stderr.String())
	}
}

// killVehicleSide is the vehicle: its store (filled, and checkpointed
// into dir), and later its capped link and a shipper counting the
// chunks it publishes.
type killVehicleSide struct {
	t      *testing.T
	store  *storage.Store
	dir    string // the checkpoints
	m      *manifest.Manifest
	up     *vedge.Uploader
	ship   *ckptlink.Shipper
	sentMu sync.Mutex
	sends  map[int]int // chunk index → times published
}

func newKillVehicle(t *testing.T) *killVehicleSide {
	t.Helper()
	v := &killVehicleSide{t: t, dir: filepath.Join(t.TempDir(), "checkpoints"), sends: map[int]int{}}
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "db")
	s, err := storage.Open(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	v.store = s
	// 6000 records: a full checkpoint of some 20 chunks, since the store's
	// segments compress these records about 3 to 1.
	for range 6000 {
		if err := killAppend(s); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stream(killStream)
	if err := st.WaitDurable(context.Background(), st.Assigned()); err != nil {
		t.Fatal(err)
	}
	if v.m, err = checkpoint.Take(context.Background(), s, checkpoint.Options{Dir: v.dir, Kind: manifest.Full, Vehicle: killVehicle, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if len(v.m.Chunks) < 16 {
		t.Fatalf("%d chunks; the test wants 16 or more", len(v.m.Chunks))
	}
	return v
}

func (v *killVehicleSide) uploader(broker string, rate int, subs ...vedge.Subscription) *vedge.Uploader {
	v.t.Helper()
	up, err := vedge.New(vedge.Config{Broker: broker, Vehicle: killVehicle, Boot: v.store.Boot(), MaxBytesPerSecond: rate, Subscriptions: subs,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond, ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second},
		v.store, zaptest.NewLogger(v.t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		v.t.Fatal(err)
	}
	if err := up.Start(context.Background()); err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { closeKill(v.t, "uploader", up.Close) })
	return up
}

func closeKill(t *testing.T, what string, close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := close(ctx); err != nil {
		t.Errorf("%s Close: %v", what, err)
	}
}

// startShipping drains the telemetry at full speed (bulk traffic waits behind
// it), then starts the capped link and the shipper.
func (v *killVehicleSide) startShipping(broker string) {
	v.t.Helper()
	drain := v.uploader(broker, 0)
	eventually(v.t, 30*time.Second, "the telemetry drained", func() bool { return drain.State() == vedge.Live })
	closeKill(v.t, "uploader", drain.Close)
	link := killLink(func(ctx context.Context, topic string, p []byte) error {
		err := v.up.PublishBulk(ctx, topic, p)
		if e, derr := ckptlink.Decode(p); err == nil && derr == nil && e.Type == ckptlink.TypeChunk {
			v.sentMu.Lock()
			v.sends[e.Index]++
			v.sentMu.Unlock()
		}
		return err
	})
	sh, err := ckptlink.NewShipper(ckptlink.ShipperConfig{Vehicle: killVehicle, Dir: v.dir, Link: link, AckTimeout: 2 * time.Second,
		Log: zaptest.NewLogger(v.t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		v.t.Fatal(err)
	}
	v.up = v.uploader(broker, killRate, vedge.Subscription(sh.Subscriptions()[0]))
	if err := sh.Start(context.Background()); err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { closeKill(v.t, "shipper", sh.Close) })
	v.ship = sh
}

type killLink func(ctx context.Context, topic string, p []byte) error

func (f killLink) PublishBulk(ctx context.Context, topic string, p []byte) error {
	return f(ctx, topic, p)
}

// acked reads the chunks acknowledged in the checkpoint's upload.json.
func (v *killVehicleSide) acked() map[int]bool {
	v.t.Helper()
	b, err := os.ReadFile(filepath.Join(v.dir, v.m.ID, ckptlink.ProgressName))
	if err != nil {
		v.t.Fatal(err)
	}
	var p struct {
		ID     string `json:"id"`
		Chunks int    `json:"chunks"`
		Acked  []byte `json:"acked"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.ID != v.m.ID || p.Chunks != len(v.m.Chunks) || len(p.Acked) != (p.Chunks+7)/8 {
		v.t.Fatalf("%s of checkpoint %s is not whole (%v): %q", ckptlink.ProgressName, v.m.ID, err, b)
	}
	out := map[int]bool{}
	for i := range p.Chunks {
		if p.Acked[i/8]&(1<<(i%8)) != 0 {
			out[i] = true
		}
	}
	return out
}

// trickle appends a record every 20 ms until stop is closed.
func (v *killVehicleSide) trickle() (stop func()) {
	quit, done := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				done <- nil
				return
			case <-tick.C:
			}
			if err := killAppend(v.store); err != nil {
				done <- err
				return
			}
		}
	}()
	return func() {
		close(quit)
		if err := <-done; err != nil {
			v.t.Error(err)
		}
	}
}

// TestKillIngestMidUpload: `vigil-fleet ingest` (the built binary: the
// telemetry ingester and the checkpoint receiver) is killed with SIGKILL
// while a vehicle uploads a checkpoint over a 200 KiB/s link and keeps
// appending telemetry, and started again on the same --sink. The upload
// completes; no chunk acknowledged at the kill goes again, and no more
// than the window and a few do; `checkpoint list` shows the checkpoint
// and `checkpoint verify --read-data` passes; the checkpoint store holds
// nothing half written under a real name; and the sink holds every
// record the vehicle made durable, as it was made.
func TestKillIngestMidUpload(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vigil-fleet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	broker := mqtttest.Start(t, mqtttest.Options{})
	sinkDir := filepath.Join(t.TempDir(), "sink")
	v := newKillVehicle(t)
	first := startIngestBin(t, bin, broker.URL(), sinkDir)
	v.startShipping(broker.URL())
	stop := v.trickle()
	eventually(t, 30*time.Second, "a quarter of the chunks acknowledged", func() bool {
		st := v.ship.Stats()
		return len(st.Checkpoints) == 1 && st.Checkpoints[0].Acked >= len(v.m.Chunks)/4
	})
	first.signal(syscall.SIGKILL)
	if ws, ok := first.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("vigil-fleet ingest not killed by SIGKILL: %v\n%s", first.err, first.stderr.String())
	}
	acked := v.acked()
	if len(acked) == len(v.m.Chunks) {
		t.Fatal("the upload finished before the ingester was killed")
	}
	time.Sleep(300 * time.Millisecond) // chunks and batches go nowhere meanwhile
	second := startIngestBin(t, bin, broker.URL(), sinkDir)
	eventually(t, 60*time.Second, "the checkpoint complete", func() bool { return v.ship.Uploaded(v.m.ID) })
	stop()
	eventually(t, 30*time.Second, "every record acknowledged", func() bool { return v.up.State() == vedge.Live })
	durable := v.store.Stream(killStream).Durable()
	second.signal(syscall.SIGTERM)
	if second.err != nil {
		t.Fatalf("vigil-fleet ingest after SIGTERM: %v\n%s", second.err, second.stderr.String())
	}

	v.sentMu.Lock()
	again := 0
	for i, n := range v.sends {
		if n > 1 {
			again++
			if acked[i] {
				t.Errorf("chunk %d, acknowledged before the kill, sent %d times", i, n)
			}
		}
	}
	if len(v.sends) != len(v.m.Chunks) {
		t.Errorf("%d of %d chunks sent", len(v.sends), len(v.m.Chunks))
	}
	v.sentMu.Unlock()
	if again > ckptlink.DefaultWindow+2 {
		t.Errorf("%d chunks sent again; at most %d (the window, and a few) were unacknowledged at the kill", again, ckptlink.DefaultWindow+2)
	}
	checkKillStore(t, bin, sinkDir, v.m)
	checkKillSink(t, sinkDir, durable)
	t.Logf("ingester killed with %d of %d chunks acknowledged; %d chunks sent again (%d resends); %d records durable, all in the sink",
		len(acked), len(v.m.Chunks), again, v.ship.Stats().ChunksResent, durable)
}

// checkKillStore: the checkpoint store serves m (`checkpoint list` and
// `checkpoint verify --read-data`, the binary's), and every file in it
// is a temporary file or whole under its name.
func checkKillStore(t *testing.T, bin, sinkDir string, m *manifest.Manifest) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{{"list"}, {"verify", "--read-data"}} {
		stdout.Reset()
		stderr.Reset()
		cmd := exec.Command(bin, append(append([]string{"checkpoint"}, args...), "--vehicle", killVehicle, "--sink", sinkDir)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("vigil-fleet checkpoint %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), m.ID) && args[0] == "list" {
			t.Fatalf("vigil-fleet checkpoint list lacks %s:\n%s", m.ID, stdout.String())
		}
	}
	root := defaultCheckpointDir(sinkDir)
	blobs, err := blob.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	temps := 0
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
			if _, err := manifest.Parse(b, strings.TrimSuffix(e.Name(), ".json")); err != nil {
				t.Errorf("catalog file %s: %v", path, err)
			}
		case manifest.ValidHash(e.Name()):
			if err := blob.Verify(context.Background(), blobs, e.Name()); err != nil {
				t.Errorf("blob file %s: %v", path, err)
			}
		case strings.HasSuffix(e.Name(), ".verify"): // verify --read-data above recorded it
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var v blob.Verification
			if err := json.Unmarshal(b, &v); err != nil || !v.OK || !v.ReadData {
				t.Errorf("verification record %s: %s (%v), want ok with the data read", path, b, err)
			}
		default:
			t.Errorf("unexpected file %s in the checkpoint store", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checkpoint store: %d temporary files", temps)
}

// checkKillSink: the sink holds records 1..durable of killStream, each
// as killPayload made it.
func checkKillSink(t *testing.T, sinkDir string, durable uint64) {
	t.Helper()
	sk, err := sink.Open(sinkDir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sk.ReadStream(killVehicle, killStream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[uint64][]byte, len(recs))
	for _, r := range recs {
		got[r.Seq] = r.Payload
	}
	lost := 0
	for seq := uint64(1); seq <= durable; seq++ {
		p, ok := got[seq]
		switch {
		case !ok:
			lost++
		case !bytes.Equal(p, killPayload(seq)):
			t.Errorf("sink: %s record %d holds %.40q…, not its payload", killStream, seq, p)
		}
	}
	if lost > 0 {
		t.Errorf("sink: %d of %d durable %s records missing", lost, durable, killStream)
	}
}
