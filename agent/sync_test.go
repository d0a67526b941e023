package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/internal/leaktest"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/sink"
)

// childConfigEnv makes the test binary run a daemon instead of the tests:
// the scenarios kill it with SIGKILL, which needs a process of its own.
const childConfigEnv = "VIGIL_TEST_DAEMON_CONFIG"

func TestMain(m *testing.M) {
	// Backends with isolation: process start this binary again as their
	// worker, as vigild does (cmd/vigild/worker.go).
	inference.WorkerMain()
	if p := os.Getenv(childConfigEnv); p != "" {
		os.Exit(runChildDaemon(p))
	}
	leaktest.VerifyTestMain(m)
}

// runChildDaemon runs a daemon from a JSON configuration until SIGTERM.
func runChildDaemon(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log, level, err := NewLogger(cfg.Log, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	d, err := Start(context.Background(), cfg, log, level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		return 1
	}
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		return 1
	}
	return 0
}

// child is a daemon in a subprocess.
type child struct {
	t    *testing.T
	cfg  Config
	cmd  *exec.Cmd
	done chan error
	c    *client.Client
}

func startChild(t *testing.T, cfg Config, stderr io.Writer) *child {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childConfigEnv+"="+path)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{t: t, cfg: cfg, cmd: cmd, done: make(chan error, 1)}
	go func() { ch.done <- cmd.Wait() }()
	t.Cleanup(func() { ch.kill() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := client.Dial(cfg.Socket.Path)
		if err == nil {
			ch.c = c
			return ch
		}
		select {
		case err := <-ch.done:
			ch.done <- err
			t.Fatalf("child daemon exited before serving: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("child daemon did not serve on %s: %v", cfg.Socket.Path, err)
		}
	}
}

// kill stops the child with SIGKILL: no goodbye, no flush.
func (ch *child) kill() {
	if ch.c != nil {
		ch.c.Close()
		ch.c = nil
	}
	if ch.cmd.ProcessState == nil {
		ch.cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck // may be gone
	}
	select {
	case err := <-ch.done:
		ch.done <- err
	case <-time.After(10 * time.Second):
		ch.t.Errorf("child daemon did not die")
	}
}

// stop stops the child with SIGTERM and checks it exits cleanly.
func (ch *child) stop() {
	ch.t.Helper()
	ch.c.Close()
	ch.c = nil
	ch.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case err := <-ch.done:
		ch.done <- err
		if err != nil {
			ch.t.Errorf("child daemon exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		ch.t.Fatalf("child daemon did not stop on SIGTERM")
	}
}

func (ch *child) status() status.Status {
	ch.t.Helper()
	return fetchStatus(ch.t, ch.c)
}

func streamStatus(st status.Status, name string) status.StreamStatus {
	for _, s := range st.Storage.Streams {
		if s.Name == name {
			return s
		}
	}
	return status.StreamStatus{}
}

func syncStream(st status.Status, name string) status.SyncStreamStatus {
	for _, s := range st.Sync.Streams {
		if s.Stream == name {
			return s
		}
	}
	return status.SyncStreamStatus{}
}

// cloudSide is an ingester into a sink, as vigil-fleet ingest runs it.
type cloudSide struct {
	sink *sink.Sink
	in   *ingest.Ingester
}

func startCloud(t *testing.T, broker *mqtttest.Broker, dir string) *cloudSide {
	t.Helper()
	sk, err := sink.Open(dir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ingest.Config{Broker: broker.URL(), PublishTimeout: 2 * time.Second, ConnectTimeout: 2 * time.Second, ReconnectMax: 500 * time.Millisecond}, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Close(ctx)
	})
	return &cloudSide{sink: sk, in: in}
}

func (c *cloudSide) stream(vehicle, name string) (sink.StreamReport, bool) {
	for _, v := range c.sink.Report().Vehicles {
		if v.Vehicle != vehicle {
			continue
		}
		for _, s := range v.Streams {
			if s.Stream == name {
				return s, true
			}
		}
	}
	return sink.StreamReport{}, false
}

// frames counts, by frame sequence, the request summaries one store
// incarnation of vehicle uploaded to the cloud.
func (c *cloudSide) frames(t *testing.T, vehicle string, store uint64) map[uint64]int {
	t.Helper()
	out := map[uint64]int{}
	var after uint64
	for {
		recs, err := c.sink.ReadStore(vehicle, store, storage.StreamInference, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			after = r.Seq
			if r.Kind == storage.KindData && len(r.Payload) == summarySize {
				out[binary.LittleEndian.Uint64(r.Payload[4:])]++
			}
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", d, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSyncDaemonKilledMidDrain: a vehicle records while the broker is
// down, the link comes back, the daemon is killed with SIGKILL half-way
// through the drain and started again. Every record that was durable
// before the kill reaches the cloud exactly once (after de-duplication),
// every request's summary among them, and no stream has a hole that an
// eviction does not explain.
func TestSyncDaemonKilledMidDrain(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	broker.Stop() // the vehicle starts offline
	cfg := daemonConfig(t)
	cfg.Health.Interval = 100 * time.Millisecond
	cfg.Sync = SyncConfig{Enabled: true, Config: edge.Config{
		Broker:     broker.URL(),
		MaxPayload: 2048, Window: 2, AckTimeout: time.Second,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		ConnectTimeout: 2 * time.Second, KeepAlive: 2 * time.Second,
		// Slow enough that the drain is still going when the daemon is
		// killed.
		MaxBytesPerSecond: 16 << 10,
	}}
	var logs strings.Builder
	stderr := &syncWriter{b: &logs}
	ch := startChild(t, cfg, stderr)

	const frames = 300
	for i := range frames {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := ch.c.Infer(ctx, &client.InferRequest{FrameSeq: uint64(i), Budget: 100 * time.Millisecond, Inputs: randomFrame()})
		cancel()
		if err != nil {
			t.Fatalf("infer %d: %v", i, err)
		}
	}
	// What is durable now must reach the cloud, whatever happens next.
	var durable map[string]uint64
	waitFor(t, 10*time.Second, "the requests durable", func() (bool, string) {
		st := ch.status()
		durable = map[string]uint64{}
		for _, s := range st.Storage.Streams {
			durable[s.Name] = s.Durable
		}
		return durable[storage.StreamInference] >= frames, fmt.Sprint(durable)
	})
	if st := ch.status(); st.Sync.State != "offline" && st.Sync.State != "connecting" {
		t.Fatalf("sync state %q with the broker down", st.Sync.State)
	}

	broker.Restart()
	cloud := startCloud(t, broker, filepath.Join(t.TempDir(), "sink"))
	waitFor(t, 30*time.Second, "part of the drain acknowledged", func() (bool, string) {
		s, _ := cloud.stream(cfg.VehicleID, storage.StreamInference)
		return s.Records > 0, fmt.Sprintf("%+v", s)
	})
	before, _ := cloud.stream(cfg.VehicleID, storage.StreamInference)
	ch.kill()
	if before.Through >= durable[storage.StreamInference] {
		t.Fatalf("the drain finished before the kill (through %d of %d): the scenario did not happen", before.Through, durable[storage.StreamInference])
	}
	t.Logf("killed with the cloud through %d of %d inference records", before.Through, durable[storage.StreamInference])

	ch = startChild(t, cfg, stderr)
	waitFor(t, 90*time.Second, "the drain after the restart", func() (bool, string) {
		st := ch.status()
		for name, n := range durable {
			if s := syncStream(st, name); s.Cursor < n {
				return false, fmt.Sprintf("%s acked through %d of %d; sync %+v", name, s.Cursor, n, st.Sync)
			}
		}
		return true, ""
	})
	ch.stop()

	for name, n := range durable {
		s, ok := cloud.stream(cfg.VehicleID, name)
		if n > 0 && !ok {
			t.Errorf("stream %s: nothing in the cloud", name)
			continue
		}
		if s.Through < n || len(s.Missing) > 0 {
			t.Errorf("stream %s: cloud complete through %d, %d durable before the kill; missing %v", name, s.Through, n, s.Missing)
		}
	}
	// Every request's summary exactly once.
	inf, _ := cloud.stream(cfg.VehicleID, storage.StreamInference)
	seen := cloud.frames(t, cfg.VehicleID, inf.Store)
	for f := range uint64(frames) {
		if n := seen[f]; n != 1 {
			t.Errorf("frame %d's summary is in the cloud %d times", f, n)
		}
	}
	if t.Failed() {
		t.Logf("daemon logs:\n%s", logs.String())
	}
}

// syncWriter serialises writes from the child's stderr copier.
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// commandRig is a daemon linked over mutual TLS to a broker that
// enforces the fleet ACL, with one trusted operator key, and an operator
// connected with the "fleet" certificate.
type commandRig struct {
	t       *testing.T
	broker  *mqtttest.Broker
	pki     *mqtttest.PKI
	cfg     Config
	priv    ed25519.PrivateKey
	sender  *cmdlink.Sender
	vehicle string
}

func newCommandRig(t *testing.T) *commandRig {
	t.Helper()
	pki := mqtttest.NewPKI(t)
	broker := mqtttest.Start(t, mqtttest.Options{TLS: pki, ACL: mqtttest.FleetACL})
	cfg := daemonConfig(t)
	cfg.VehicleID = "car-1"
	cfg.Metrics.Listen = "127.0.0.1:0"
	pub, priv, _, err := command.KeyGen(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "fleet.pub")
	if err := os.WriteFile(keyFile, cmdlink.MarshalPublicKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	vc := pki.Client(cfg.VehicleID)
	cfg.Sync = SyncConfig{
		Enabled:  true,
		Config:   edge.Config{Broker: broker.URL(), ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond, AckTimeout: time.Second},
		TLS:      SyncTLSConfig{CA: pki.CAFile, Cert: vc.CertFile, Key: vc.KeyFile},
		Commands: CommandsConfig{Enabled: true, TrustedKeys: []string{keyFile}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sender, err := cmdlink.Dial(ctx, cmdlink.SenderConfig{Broker: broker.URL(), TLS: pki.ClientTLS("fleet")})
	if err != nil {
		t.Fatalf("operator dial: %v", err)
	}
	t.Cleanup(func() {
		if err := sender.Close(context.Background()); err != nil {
			t.Errorf("sender close: %v", err)
		}
	})
	return &commandRig{t: t, broker: broker, pki: pki, cfg: cfg, priv: priv, sender: sender, vehicle: cfg.VehicleID}
}

// send sends a command signed with key and returns the vehicle's response.
func (r *commandRig) send(key ed25519.PrivateKey, cmd command.Command, args map[string]string) (command.Response, string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.sender.Send(ctx, command.Envelope{Target: r.vehicle, Command: cmd, Args: args}, key)
	if err != nil {
		r.t.Fatalf("send %s: %v", cmd, err)
	}
	if len(res.Replies) != 1 {
		r.t.Fatalf("send %s: %d replies, missing %v", cmd, len(res.Replies), res.Missing)
	}
	return res.Replies[0].Response, res.CorrelationID
}

func (r *commandRig) waitOnline(c *client.Client) {
	r.t.Helper()
	waitFor(r.t, 20*time.Second, "the link up", func() (bool, string) {
		st := fetchStatus(r.t, c)
		return st.Sync.State == "live" || st.Sync.State == "draining", st.Sync.State
	})
}

// TestFleetCommandsEndToEnd: an operator's signed commands reach the
// daemon over the mutually authenticated link and are carried out;
// unsafe ones wait for the vehicle to be parked; forged, replayed and
// unknown-key ones are refused with an error response and recorded; a
// replay is still refused after the daemon restarts.
func TestFleetCommandsEndToEnd(t *testing.T) {
	r := newCommandRig(t)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)

	resp, _ := r.send(r.priv, command.Status, nil)
	if !resp.OK {
		t.Fatalf("status: %+v", resp)
	}
	var st status.Status
	if err := json.Unmarshal(resp.Result, &st); err != nil || st.VehicleID != r.vehicle || st.Sync.Commands == nil {
		t.Fatalf("status result: %v %+v", err, st)
	}
	// With the link up, storage open and commands on, the document still
	// matches its published schema.
	validateStatus(t, statusSchema(t), resp.Result)

	// The supervisor has not said the vehicle is parked: unsafe commands
	// wait.
	resp, _ = r.send(r.priv, command.Policy, map[string]string{"policy": "warm"})
	if resp.OK || resp.Code != command.CodeUnsafeWhileMoving {
		t.Fatalf("policy while driving: %+v", resp)
	}
	if p := fetchStatus(t, c).Policy; p != "hot" {
		t.Fatalf("policy %s after a refused command", p)
	}
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	resp, _ = r.send(r.priv, command.Policy, map[string]string{"policy": "warm"})
	if !resp.OK {
		t.Fatalf("policy while parked: %+v", resp)
	}
	if p := fetchStatus(t, c).Policy; p != "warm" {
		t.Fatalf("policy %s after the command, want warm", p)
	}
	resp, _ = r.send(r.priv, command.Failover, map[string]string{"backend": "primary"})
	if !resp.OK || !fetchStatus(t, c).Backends[0].Forced {
		t.Fatalf("failover: %+v; primary forced %v", resp, fetchStatus(t, c).Backends[0].Forced)
	}
	resp, _ = r.send(r.priv, command.Clear, map[string]string{"backend": "primary"})
	if !resp.OK {
		t.Fatalf("clear: %+v", resp)
	}
	resp, _ = r.send(r.priv, command.Policy, map[string]string{"policy": "lukewarm"})
	if resp.OK || resp.Code != command.CodeBadArgs {
		t.Fatalf("bad policy: %+v", resp)
	}
	resp, _ = r.send(r.priv, command.LogLevel, map[string]string{"level": "debug"})
	if !resp.OK || d.level.Level().String() != "debug" {
		t.Fatalf("log-level: %+v, level %v", resp, d.level.Level())
	}
	resp, _ = r.send(r.priv, command.SyncNow, nil)
	if !resp.OK {
		t.Fatalf("sync-now: %+v", resp)
	}

	// A key the vehicle does not trust.
	_, other, _, err := command.KeyGen(nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = r.send(other, command.LogLevel, map[string]string{"level": "error"})
	if resp.OK || resp.Code != command.CodeRejected || d.level.Level().String() != "debug" {
		t.Fatalf("untrusted key: %+v, level %v", resp, d.level.Level())
	}

	// A signed envelope replayed.
	env := command.Envelope{Target: r.vehicle, Command: command.LogLevel, Args: map[string]string{"level": "info"},
		KeyID: command.KeyIDOf(r.priv.Public().(ed25519.PublicKey))}
	env.Nonce, _ = command.NewNonce(nil)
	env.IssuedAt = time.Now().Truncate(time.Millisecond)
	env.Expires = env.IssuedAt.Add(time.Minute)
	env.CorrelationID = cmdlink.NewCorrelationID()
	signed, err := command.Sign(env, r.priv)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := signed.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sendRaw := func(what string) command.Response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := r.sender.SendRaw(ctx, cmdlink.CommandTopic(r.vehicle), raw, env.CorrelationID, r.vehicle)
		if err != nil || len(res.Replies) != 1 {
			t.Fatalf("%s: %v, replies %+v", what, err, res)
		}
		return res.Replies[0].Response
	}
	if resp := sendRaw("first"); !resp.OK || d.level.Level().String() != "info" {
		t.Fatalf("first delivery: %+v", resp)
	}
	d.level.SetLevel(zap.WarnLevel)
	if resp := sendRaw("replay"); resp.OK || resp.Code != command.CodeRejected || !strings.Contains(resp.Message, "replayed") {
		t.Fatalf("replay: %+v", resp)
	}
	if d.level.Level() != zap.WarnLevel {
		t.Fatalf("a replayed command changed the log level to %v", d.level.Level())
	}

	if b := fetchStatus(t, c).Sync.InFlightBudget; b <= 0 {
		t.Errorf("status: in-flight budget %d with the link up", b)
	}
	cs := fetchStatus(t, c).Sync.Commands
	if cs == nil || cs.RejectedBy["unsafe_while_moving"] != 1 || cs.RejectedBy["unknown_key"] != 1 || cs.RejectedBy["replayed"] != 1 || cs.BadArgs != 1 {
		t.Fatalf("command counts: %+v", cs)
	}
	// The same counts, and the link's state, on the metrics endpoint.
	resp2, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	for _, want := range []string{
		`vigil_fleet_commands_total{outcome="bad_args"} 1`,
		`vigil_fleet_commands_rejected_total{reason="replayed"} 1`,
		`vigil_fleet_commands_rejected_total{reason="unknown_key"} 1`,
		`vigil_storage_unsynced_records{stream="inference"}`,
		`vigil_sync_rejected_total{stream="events"} 0`,
		"vigil_sync_in_flight_budget_bytes ",
		"vigil_sync_ack_timeout_seconds ",
		"vigil_sync_smoothed_ack_rtt_seconds ",
		"vigil_sync_min_ack_rtt_seconds ",
		"vigil_sync_delivery_bytes_per_second ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if !strings.Contains(string(body), `vigil_sync_state{state="live"} 1`) && !strings.Contains(string(body), `vigil_sync_state{state="draining"} 1`) {
		t.Errorf("metrics: the link is neither live nor draining:\n%s", body)
	}

	// After a restart the nonce is still known.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	d2, c2 := startDaemon(t, r.cfg)
	r.waitOnline(c2)
	if resp := sendRaw("replay after restart"); resp.OK || !strings.Contains(resp.Message, "replayed") {
		t.Fatalf("replay after restart: %+v", resp)
	}
	if d2.level.Level() == zap.InfoLevel {
		t.Fatal("a replayed command ran after the restart")
	}

	// Every command left an event in the buffer.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := d2.Close(ctx2); err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, r.cfg)
	accepted, rejected := 0, 0
	for _, e := range events {
		if e["type"] != "fleet_command" {
			continue
		}
		if e["accepted"] == true {
			accepted++
		} else {
			rejected++
		}
	}
	if accepted != 8 || rejected != 4 {
		t.Errorf("fleet_command events: %d accepted, %d rejected; want 8 and 4", accepted, rejected)
	}
}

// readEvents opens the daemon's store after it stopped and decodes the
// events stream.
func readEvents(t *testing.T, cfg Config) []map[string]any {
	t.Helper()
	st, err := storage.Open(context.Background(), cfg.StorageConfig(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	var out []map[string]any
	var after uint64
	for {
		recs, err := st.Read(storage.StreamEvents, after, 500, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			after = r.Seq
			var m map[string]any
			if r.Kind == storage.KindData && json.Unmarshal(r.Payload, &m) == nil {
				out = append(out, m)
			}
		}
	}
}

// TestSyncAfterStoreMovedAside: a vehicle's buffer becomes unreadable and
// is moved aside; the fresh one numbers its records from 1 again. Its
// records must reach the cloud as new ones (the store's incarnation id
// tells them apart), not be taken for duplicates of the old store's and
// deleted unsent.
func TestSyncAfterStoreMovedAside(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	cloud := startCloud(t, broker, filepath.Join(t.TempDir(), "sink"))
	cfg := daemonConfig(t)
	cfg.Sync = SyncConfig{Enabled: true, Config: edge.Config{Broker: broker.URL(), AckTimeout: time.Second,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond}}

	run := func(first uint64, n int) status.Status {
		t.Helper()
		d, c := startDaemon(t, cfg)
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.Infer(ctx, &client.InferRequest{FrameSeq: first + uint64(i), Budget: 100 * time.Millisecond, Inputs: randomFrame()})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		var st status.Status
		waitFor(t, 20*time.Second, "the requests in the cloud", func() (bool, string) {
			st = fetchStatus(t, c)
			in := streamStatus(st, storage.StreamInference)
			s := syncStream(st, storage.StreamInference)
			return in.Durable >= uint64(n) && s.Cursor >= in.Durable, fmt.Sprintf("durable %d, acked through %d", in.Durable, s.Cursor)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Fatal(err)
		}
		return st
	}
	run(0, 20)
	if err := os.WriteFile(filepath.Join(cfg.StorageConfig().Dir, "MANIFEST"), []byte("not a manifest"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := run(1000, 10)
	if st.Storage.Recovered == "" {
		t.Fatalf("the store was not moved aside: %+v", st.Storage)
	}

	var stores []uint64
	for _, v := range cloud.sink.Report().Vehicles {
		for _, s := range v.Streams {
			if v.Vehicle == cfg.VehicleID && s.Stream == storage.StreamInference {
				stores = append(stores, s.Store)
				if len(s.Missing) > 0 {
					t.Errorf("store %016x: missing %v", s.Store, s.Missing)
				}
			}
		}
	}
	if len(stores) != 2 {
		t.Fatalf("the cloud has %d incarnations of the inference stream, want 2", len(stores))
	}
	frames := map[uint64]int{}
	for _, store := range stores {
		for f, n := range cloud.frames(t, cfg.VehicleID, store) {
			frames[f] += n
		}
	}
	for _, f := range append(seqs(0, 20), seqs(1000, 10)...) {
		if frames[f] != 1 {
			t.Errorf("frame %d in the cloud %d times", f, frames[f])
		}
	}
}

func seqs(first uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}
