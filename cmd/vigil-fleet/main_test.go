package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/presence"
	"github.com/vigil-av/vigil/sync/sink"
)

// lockedBuffer is written by the ingester's goroutines and read by the
// test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fleet runs vigil-fleet with args; it returns stdout, stderr and the
// error run returned (non-nil: exit status 1).
func fleet(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return fleetCtx(context.Background(), args...)
}

func fleetCtx(ctx context.Context, args ...string) (string, string, error) {
	var out, errb lockedBuffer
	err := run(ctx, args, &out, &errb)
	return out.String(), errb.String(), err
}

// keygen makes a key pair under a temporary directory and returns the
// prefix.
func keygen(t *testing.T) string {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "op")
	if _, stderr, err := fleet(t, "keygen", "--out", prefix); err != nil {
		t.Fatalf("keygen: %v\n%s", err, stderr)
	}
	return prefix
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestKeygen(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "ops-alice")
	out, _, err := fleet(t, "keygen", "--out", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, prefix+".key"); m != 0o600 {
		t.Errorf("private key mode %04o", m)
	}
	if m := mode(t, prefix+".pub"); m != 0o644 {
		t.Errorf("public key mode %04o", m)
	}
	pub, err := cmdlink.ReadPublicKey(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := cmdlink.ReadPrivateKey(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Error("the files hold different keys")
	}
	if !strings.Contains(out, "key id:      "+command.KeyIDOf(pub)+"\n") {
		t.Errorf("key id not printed:\n%s", out)
	}
	privBefore, _ := os.ReadFile(prefix + ".key")

	// Never overwrites, whichever file exists.
	if _, _, err := fleet(t, "keygen", "--out", prefix); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second keygen: %v", err)
	}
	if after, _ := os.ReadFile(prefix + ".key"); !bytes.Equal(after, privBefore) {
		t.Error("the private key changed")
	}
	os.Remove(prefix + ".key")
	if _, _, err := fleet(t, "keygen", "--out", prefix); err == nil || !strings.Contains(err.Error(), prefix+".pub exists") {
		t.Errorf("with the public key left: %v", err)
	}
	if _, err := os.Stat(prefix + ".key"); err == nil {
		t.Error("a private key was written next to an old public key")
	}

	// A directory gets fleet.key and fleet.pub.
	dir := t.TempDir()
	if _, _, err := fleet(t, "keygen", "--out", dir); err != nil {
		t.Fatal(err)
	}
	if mode(t, filepath.Join(dir, "fleet.key")) != 0o600 || mode(t, filepath.Join(dir, "fleet.pub")) != 0o644 {
		t.Error("directory form")
	}
	if _, _, err := fleet(t, "keygen", "--out", filepath.Join(dir, "no", "such", "dir", "k")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing parent: %v", err)
	}
}

// edge is one vehicle's receiver on its own link.
type edge struct {
	r      *cmdlink.Receiver
	link   *cmdlink.Link
	moving atomic.Bool
	mu     sync.Mutex
	envs   []command.Envelope
}

func (e *edge) executed() []command.Envelope {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]command.Envelope(nil), e.envs...)
}

func startEdge(t *testing.T, broker, vehicle, pubFile string, tlsCfg *tls.Config) *edge {
	t.Helper()
	pub, err := cmdlink.ReadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := command.NewVerifier(command.VerifierConfig{
		Keys: map[string]ed25519.PublicKey{command.KeyIDOf(pub): pub}, Vehicle: vehicle, Now: time.Now,
		Nonces: command.NewMemoryNonces(time.Now),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &edge{}
	exec := cmdlink.ExecutorFunc(func(_ context.Context, env command.Envelope) (json.RawMessage, error) {
		e.mu.Lock()
		e.envs = append(e.envs, env)
		e.mu.Unlock()
		switch env.Args["level"] {
		case "loud":
			return nil, cmdlink.BadArgs("level %q: want debug, info, warn or error", "loud")
		case "broken":
			return nil, errors.New("the logger is gone")
		}
		return json.Marshal(map[string]string{"vehicle": vehicle, "level": env.Args["level"]})
	})
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	var link *cmdlink.Link
	e.r, err = cmdlink.NewReceiver(cmdlink.Config{Vehicle: vehicle, Verifier: v, Exec: exec, Moving: e.moving.Load,
		Publish: func(topic string, p []byte) error { return link.Publish(topic, p) }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	link, err = cmdlink.DialLink(ctx, cmdlink.LinkConfig{Broker: broker, ClientID: vehicle, TLS: tlsCfg, Log: log}, e.r.Topics(), e.r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	e.link = link
	if err := e.r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.r.Close(ctx)
		if err := link.Close(ctx); err != nil {
			t.Errorf("link close: %v", err)
		}
	})
	return e
}

func TestCmd(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	key := keygen(t)
	e := startEdge(t, b.URL(), "veh-1", key+".pub", nil)
	base := []string{"cmd", "--broker", b.URL(), "--key", key + ".key"}

	out, stderr, err := fleet(t, append(base, "veh-1", "log-level", "level=debug", "--id", "corr-1")...)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(out, "veh-1") || !strings.Contains(out, " ok ") || !strings.Contains(out, `{"level":"debug","vehicle":"veh-1"}`) {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(stderr, "correlation id corr-1") {
		t.Errorf("stderr:\n%s", stderr)
	}
	ex := e.executed()
	if len(ex) != 1 || ex[0].Command != command.LogLevel || ex[0].Args["level"] != "debug" || ex[0].CorrelationID != "corr-1" {
		t.Fatalf("executed %+v", ex)
	}
	if l := ex[0].Expires.Sub(ex[0].IssuedAt); l != 5*time.Minute {
		t.Errorf("lifetime %v, want the default --ttl", l)
	}

	// --json, flags after the arguments, and --ttl.
	out, _, err = fleet(t, append(base, "veh-1", "status", "--json", "--ttl", "90s")...)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		CorrelationID string `json:"correlation_id"`
		Replies       []struct {
			Vehicle string       `json:"vehicle"`
			OK      bool         `json:"ok"`
			Code    command.Code `json:"code"`
		} `json:"replies"`
		Missing []string `json:"missing"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Replies) != 1 || !doc.Replies[0].OK || doc.Replies[0].Vehicle != "veh-1" || len(doc.Missing) != 0 {
		t.Errorf("json %s: %v", out, err)
	}
	if ex := e.executed(); len(ex) != 2 || ex[1].Expires.Sub(ex[1].IssuedAt) != 90*time.Second {
		t.Errorf("--ttl not applied: %+v", ex)
	}

	// Answers that are not ok make the exit status non-zero.
	for arg, code := range map[string]string{"level=loud": "bad_args", "level=broken": "failed"} {
		out, _, err = fleet(t, append(base, "veh-1", "log-level", arg)...)
		if err == nil || !strings.Contains(err.Error(), "1 of 1 responses not ok") || !strings.Contains(out, code) {
			t.Errorf("%s: %v\n%s", arg, err, out)
		}
	}
	e.moving.Store(true)
	out, _, err = fleet(t, append(base, "veh-1", "policy", "policy=warm")...)
	if err == nil || !strings.Contains(out, "unsafe_while_moving") {
		t.Errorf("while moving: %v\n%s", err, out)
	}
	if n := len(e.executed()); n != 4 {
		t.Errorf("%d executed, want 4 (not the unsafe one)", n)
	}

	// Nobody answers for veh-2.
	out, _, err = fleet(t, append(base, "--timeout", "1s", "veh-2", "status")...)
	if err == nil || !strings.Contains(err.Error(), "no response within 1s") || !strings.Contains(out, "veh-2") || !strings.Contains(out, "(no response)") {
		t.Errorf("absent vehicle: %v\n%s", err, out)
	}

	// A key the vehicle does not trust is rejected.
	other := keygen(t)
	out, _, err = fleet(t, "cmd", "--broker", b.URL(), "--key", other+".key", "veh-1", "status")
	if err == nil || !strings.Contains(out, "rejected") || !strings.Contains(out, "unknown_key") {
		t.Errorf("untrusted key: %v\n%s", err, out)
	}
}

// beat publishes a fresh retained heartbeat of vehicle from c, as the
// uploader does.
func beat(t *testing.T, c mqtt.Client, vehicle string) {
	t.Helper()
	raw, err := presence.Heartbeat{Vehicle: vehicle, Boot: 1, Seq: 1, Wall: time.Now(), Interval: 10 * time.Second}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := mqtttest.Publish(c, presence.HeartbeatTopic(vehicle), raw, true); err != nil {
		t.Fatal(err)
	}
}

// cmd all over mutual TLS, under the fleet's ACL: the vehicles online
// (by their retained status and a fresh heartbeat) are waited for, not
// the stale one (online by its status, but without a heartbeat).
func TestCmdAllOverMutualTLS(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.Options{TLS: pki, ACL: mqtttest.FleetACL})
	key := keygen(t)
	var edges []*edge
	for _, v := range []string{"veh-1", "veh-2"} {
		edges = append(edges, startEdge(t, b.URL(), v, key+".pub", pki.ClientTLS(v)))
		c := b.Client(t, v+"-status", pki.ClientTLS(v))
		if err := mqtttest.Publish(c, cmdlink.StatusTopic(v), []byte("online"), true); err != nil {
			t.Fatal(err)
		}
		beat(t, c, v)
	}
	c5 := b.Client(t, "veh-5-status", pki.ClientTLS("veh-5"))
	if err := mqtttest.Publish(c5, cmdlink.StatusTopic("veh-5"), []byte("online"), true); err != nil {
		t.Fatal(err)
	}
	c := b.Client(t, "veh-3-status", pki.ClientTLS("veh-3"))
	if err := mqtttest.Publish(c, cmdlink.StatusTopic("veh-3"), []byte("offline"), true); err != nil {
		t.Fatal(err)
	}
	op := pki.Client("fleet")
	tlsArgs := []string{"--broker", b.URL(), "--tls-ca", pki.CAFile, "--tls-cert", op.CertFile, "--tls-key", op.KeyFile}

	out, stderr, err := fleet(t, append(append([]string{"vehicles"}, tlsArgs...), "--wait", "1500ms")...)
	if err != nil || !strings.Contains(out, "veh-1") || !strings.Contains(out, "veh-3") || !strings.Contains(out, "4 vehicles, 2 online, 1 stale") {
		t.Errorf("vehicles: %v\n%s%s", err, out, stderr)
	}

	args := append(append([]string{"cmd"}, tlsArgs...), "--key", key+".key", "--status-wait", "1500ms", "all", "sync-now")
	out, stderr, err = fleet(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(stderr, "waiting for the 2 vehicles online: veh-1, veh-2") || strings.Count(out, " ok ") != 2 ||
		!strings.Contains(stderr, "not waiting for the 1 stale vehicles (no heartbeat for 3 intervals): veh-5") {
		t.Errorf("output:\n%s%s", out, stderr)
	}
	for i, e := range edges {
		if ex := e.executed(); len(ex) != 1 || ex[0].Target != "all" || ex[0].Command != command.SyncNow {
			t.Errorf("vehicle %d executed %+v", i+1, ex)
		}
	}

	// An online vehicle that does not answer fails the command.
	c4 := b.Client(t, "veh-4-status", pki.ClientTLS("veh-4"))
	if err := mqtttest.Publish(c4, cmdlink.StatusTopic("veh-4"), []byte("online"), true); err != nil {
		t.Fatal(err)
	}
	beat(t, c4, "veh-4")
	out, _, err = fleet(t, append(args, "--timeout", "5s")...)
	if err == nil || !strings.Contains(err.Error(), "no response from veh-4 within 5s") || !strings.Contains(out, "veh-4") {
		t.Errorf("silent vehicle: %v\n%s", err, out)
	}

	// Without a client certificate the broker refuses the operator.
	_, _, err = fleet(t, "cmd", "--broker", b.URL(), "--tls-ca", pki.CAFile, "--key", key+".key", "--timeout", "5s", "veh-1", "status")
	if err == nil || !strings.Contains(err.Error(), "connect to") {
		t.Errorf("no client certificate: %v", err)
	}
}

func encodeBatch(t *testing.T, vehicle, stream string, first, last uint64) []byte {
	t.Helper()
	var recs []batch.Record
	for s := first; s <= last; s++ {
		recs = append(recs, batch.Record{Seq: s, Kind: storage.KindData, Boot: 1, Wall: time.Unix(1_700_000_000, 0), Payload: []byte(fmt.Sprintf("r%d", s))})
	}
	raw, err := batch.Encode(batch.Header{Vehicle: vehicle, Stream: stream, Boot: 1, Store: 0xabc, Compression: batch.Flate}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sink")
	s, err := sink.Open(dir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{1, 10}, {15, 20}} {
		if _, err := s.Ingest("veh-1", encodeBatch(t, "veh-1", storage.StreamEvents, r[0], r[1])); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := fleet(t, "report", "--sink", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "VEHICLE") || !strings.Contains(out, "0000000000000abc") {
		t.Fatalf("report:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 11 || f[0] != "veh-1" || f[2] != "events" || f[3] != "1" || f[4] != "20" || f[5] != "10" || f[6] != "16" || f[10] != "11-14" {
		t.Errorf("row %q", lines[1])
	}
	if !strings.Contains(out, "4 records missing without explanation") {
		t.Errorf("report:\n%s", out)
	}
	out, _, err = fleet(t, "report", "--sink", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r sink.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Vehicles) != 1 || r.Vehicles[0].Streams[0].HighWater != 20 ||
		len(r.Vehicles[0].Streams[0].Missing) != 1 {
		t.Errorf("json: %v\n%s", err, out)
	}
	empty := t.TempDir()
	if out, _, err := fleet(t, "report", "--sink", empty); err != nil || !strings.Contains(out, "no records") {
		t.Errorf("empty sink: %v %s", err, out)
	}
}

func TestIngest(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := filepath.Join(t.TempDir(), "sink")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		out, stderr string
		err         error
	}
	done := make(chan result, 1)
	go func() {
		out, stderr, err := fleetCtx(ctx, "ingest", "--broker", b.URL(), "--sink", dir, "--progress", "100ms")
		done <- result{out, stderr, err}
	}()

	c := b.Client(t, "veh-1", nil)
	acks := make(chan []byte, 16)
	if err := mqtttest.Subscribe(c, "vigil/v1/veh-1/ack", func(_ mqtt.Client, m mqtt.Message) { acks <- m.Payload() }); err != nil {
		t.Fatal(err)
	}
	raw := encodeBatch(t, "veh-1", storage.StreamEvents, 1, 5)
	deadline := time.Now().Add(30 * time.Second)
	// The ingester subscribes in the background: publish until acked.
	for acked := false; !acked; {
		if time.Now().After(deadline) {
			cancel()
			r := <-done
			t.Fatalf("no ack in 30s; ingest said:\n%s%s", r.out, r.stderr)
		}
		if err := mqtttest.Publish(c, "vigil/v1/veh-1/telemetry", raw, false); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-acks:
			ack, err := batch.DecodeAck(a)
			if err != nil || (ack.Status != batch.StatusStored && ack.Status != batch.StatusDuplicate) {
				t.Fatalf("ack %s: %v", a, err)
			}
			acked = true
		case <-time.After(500 * time.Millisecond):
		}
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not stop on its context")
	}
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.out, "veh-1") || !strings.Contains(r.out, "events") || !strings.Contains(r.stderr, "stopped") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.out, r.stderr)
	}
	if f := strings.Fields(strings.Split(r.out, "\n")[1]); len(f) < 7 || f[4] != "5" || f[5] != "5" {
		t.Errorf("report row %q", f)
	}
}

func TestArgumentErrors(t *testing.T) {
	key := keygen(t)
	garbage := filepath.Join(t.TempDir(), "garbage.key")
	os.WriteFile(garbage, []byte("not a key\n"), 0o600)
	open := filepath.Join(t.TempDir(), "open.key")
	raw, _ := os.ReadFile(key + ".key")
	os.WriteFile(open, raw, 0o644)
	pubAsKey := filepath.Join(t.TempDir(), "pub.key")
	raw, _ = os.ReadFile(key + ".pub")
	os.WriteFile(pubAsKey, raw, 0o600)
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	k := []string{"--key", key + ".key"}
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"reboot-all"}, `unknown command "reboot-all"`},
		{[]string{"cmd", "veh-1", "status"}, "--key is required"},
		{[]string{"cmd", "--key", "/nonexistent/op.key", "veh-1", "status"}, "/nonexistent/op.key"},
		{[]string{"cmd", "--key", garbage, "veh-1", "status"}, garbage + ": the key line is not base64"},
		{[]string{"cmd", "--key", open, "veh-1", "status"}, "too open"},
		{[]string{"cmd", "--key", key + ".pub", "veh-1", "status"}, "too open"},
		{[]string{"cmd", "--key", pubAsKey, "veh-1", "status"}, "this is a public key"},
		{append([]string{"cmd", "--broker", "broker:1883"}, append(k, "veh-1", "status")...), `--broker "broker:1883"`},
		{append([]string{"cmd", "--broker", "http://b:80"}, append(k, "veh-1", "status")...), `scheme "http"`},
		{append([]string{"cmd", "--broker", "ssl://b:8883", "--tls-cert", "c.pem"}, append(k, "veh-1", "status")...), "--tls-cert and --tls-key go together"},
		{append([]string{"cmd", "--tls-ca", "ca.pem"}, append(k, "veh-1", "status")...), "plain TCP"},
		{append([]string{"cmd", "--broker", "ssl://b:8883", "--tls-ca", "/nonexistent/ca.pem"}, append(k, "veh-1", "status")...), "--tls-ca: open /nonexistent/ca.pem"},
		{append([]string{"cmd"}, append(k, "veh-1", "log-level", "level")...), `argument "level": want name=value`},
		{append([]string{"cmd"}, append(k, "veh-1", "log-level", "=debug")...), "want name=value"},
		{append([]string{"cmd"}, append(k, "veh-1", "log-level", "level=a", "level=b")...), "given twice"},
		{append([]string{"cmd"}, append(k, "veh-1", "reboot")...), `unknown command "reboot"; want one of status, policy`},
		{append([]string{"cmd"}, append(k, "veh/1", "status")...), `target "veh/1"`},
		{append([]string{"cmd"}, append(k, "veh-1")...), "want <vehicle|all> <command>"},
		{append([]string{"cmd", "--ttl", "0s"}, append(k, "veh-1", "status")...), "must be positive"},
		{[]string{"cmd", "--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"keygen"}, "--out is required"},
		{[]string{"keygen", "--out", "x", "extra"}, "unexpected arguments"},
		{[]string{"ingest"}, "--sink is required"},
		{[]string{"ingest", "--sink", t.TempDir(), "--broker", "nope"}, `--broker "nope"`},
		{[]string{"report"}, "--sink is required"},
		{[]string{"report", "--sink", "/nonexistent/sink"}, "--sink: stat /nonexistent/sink"},
		{[]string{"report", "--sink", notDir}, "not a directory"},
		{[]string{"vehicles", "--broker", "tcp://"}, `--broker "tcp://"`},
	}
	for _, c := range cases {
		_, _, err := fleet(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	out, _, err := fleet(t, "help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"keygen", "cmd", "vehicles", "ingest", "report", "compact", "-tls-key", "-status-wait", "-ttl", "-sink", "-group", "-out", "-json", "refused while the vehicle moves"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if _, stderr, err := fleet(t, "cmd", "--help"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "usage: vigil-fleet cmd") || !strings.Contains(stderr, "-key") {
		t.Errorf("cmd --help: %v\n%s", err, stderr)
	}
}

// compact merges an earlier version's one-batch files into a segment;
// the report reads the same records from it.
func TestCompactCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sink")
	events := filepath.Join(dir, "veh-1", "0000000000000abc", storage.StreamEvents)
	if err := os.MkdirAll(events, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{1, 10}, {11, 12}, {15, 20}, {5, 11}} {
		name := fmt.Sprintf("%020d-%020d.batch", r[0], r[1])
		if err := os.WriteFile(filepath.Join(events, name), encodeBatch(t, "veh-1", storage.StreamEvents, r[0], r[1]), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	before, _, err := fleet(t, "report", "--sink", dir)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := fleet(t, "compact", "--sink", dir)
	if err != nil || !strings.Contains(out, "4 one-batch files of 1 streams merged into 1 segments") {
		t.Fatalf("compact: %v\n%s", err, out)
	}
	es, _ := os.ReadDir(events)
	if len(es) != 1 || !strings.HasSuffix(es[0].Name(), ".seg") {
		t.Errorf("files after compact: %v", es)
	}
	after, _, err := fleet(t, "report", "--sink", dir)
	if err != nil {
		t.Fatal(err)
	}
	// The same row but for the count of files: 4, then 1.
	b, a := strings.Fields(strings.Split(before, "\n")[1]), strings.Fields(strings.Split(after, "\n")[1])
	if len(a) != 11 || b[7] != "4" || a[7] != "1" || !slices.Equal(append(b[:7:7], b[8:]...), append(a[:7:7], a[8:]...)) ||
		a[4] != "20" || a[5] != "12" || a[6] != "18" || a[10] != "13-14" {
		t.Errorf("report before:\n%s\nafter:\n%s", before, after)
	}
	if _, _, err := fleet(t, "compact", "--sink", filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "compact: --sink: stat") {
		t.Errorf("missing directory: %v", err)
	}
}

// TestCmdSaveResend: --save writes the signed envelope it sends; --resend
// sends that file verbatim, and the vehicle refuses the replay (its nonce
// was used), so the exit status says so.
func TestCmdSaveResend(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	key := keygen(t)
	e := startEdge(t, b.URL(), "veh-1", key+".pub", nil)
	saved := filepath.Join(t.TempDir(), "status.cmd")
	out, stderr, err := fleet(t, "cmd", "--broker", b.URL(), "--key", key+".key", "--save", saved, "veh-1", "log-level", "level=info")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	raw, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := command.Peek(raw); !ok || u.Target != "veh-1" || u.Command != command.LogLevel {
		t.Fatalf("saved envelope %s", raw)
	}
	if n := len(e.executed()); n != 1 {
		t.Fatalf("%d executed, want 1", n)
	}
	out, stderr, err = fleet(t, "cmd", "--broker", b.URL(), "--resend", saved)
	if err == nil || !strings.Contains(out, "replay") || !strings.Contains(stderr, "resending log-level to veh-1") {
		t.Errorf("resend of a used envelope: %v\n%s%s", err, out, stderr)
	}
	if n := len(e.executed()); n != 1 {
		t.Errorf("%d executed after the replay, want 1", n)
	}
	// --sign-only writes an envelope and sends nothing; --resend delivers it.
	later := filepath.Join(t.TempDir(), "later.cmd")
	if _, stderr, err := fleet(t, "cmd", "--key", key+".key", "--save", later, "--sign-only", "veh-1", "log-level", "level=warn"); err != nil || !strings.Contains(stderr, "not sent") {
		t.Fatalf("--sign-only: %v %s", err, stderr)
	}
	if n := len(e.executed()); n != 1 {
		t.Errorf("%d executed after --sign-only, want 1", n)
	}
	if out, _, err := fleet(t, "cmd", "--broker", b.URL(), "--resend", later); err != nil || !strings.Contains(out, " ok ") {
		t.Errorf("--resend of a fresh envelope: %v\n%s", err, out)
	}
	if ex := e.executed(); len(ex) != 2 || ex[1].Args["level"] != "warn" {
		t.Errorf("executed %+v", ex)
	}
	if _, _, err := fleet(t, "cmd", "--key", key+".key", "--sign-only", "veh-1", "status"); err == nil || !strings.Contains(err.Error(), "--save") {
		t.Errorf("--sign-only without --save: %v", err)
	}
	if _, _, err := fleet(t, "cmd", "--broker", b.URL(), "--resend", saved, "veh-1"); err == nil || !strings.Contains(err.Error(), "no other arguments") {
		t.Errorf("--resend with arguments: %v", err)
	}
	if _, _, err := fleet(t, "cmd", "--broker", b.URL(), "--resend", filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "--resend") {
		t.Errorf("--resend of a missing file: %v", err)
	}
}
