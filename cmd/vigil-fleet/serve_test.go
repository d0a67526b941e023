package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/sync/bundlelink"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// serveLink is a vehicle's link for the test: a plain client publishing at
// QoS 1 and waiting for the PUBACK.
type serveLink struct{ c mqtt.Client }

func (l serveLink) PublishBulk(ctx context.Context, topic string, p []byte) error {
	t := l.c.Publish(topic, 1, false, p)
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TakeBulk takes nothing: the test's link has no rate cap.
func (serveLink) TakeBulk(context.Context, int) error { return nil }

// serveBundle packs and signs the demo model as an operator does and
// copies it into the store directory the way docs/models.md says (a dot
// name, then a rename); it returns the bundle's hash and a policy it
// passes.
func serveBundle(t *testing.T, store string) (string, bundle.Policy) {
	t.Helper()
	files, key := modelFiles(t), modelKeygen(t)
	tarPath := filepath.Join(t.TempDir(), "pilotnet-2.tar")
	mustFleet(t, packArgs(files, tarPath)...)
	mustFleet(t, "model", "sign", "--key", key+".key", tarPath)
	raw, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(store, ".pilotnet-2.tar")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(store, "pilotnet-2.tar")); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hash, err := b.Manifest.Hash()
	if err != nil {
		t.Fatal(err)
	}
	onnx, err := os.ReadFile(filepath.Join(files, "primary.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundle.ContractFromONNX(onnx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bundle.ReadPublicKey(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return hash, bundle.Policy{Trusted: []ed25519.PublicKey{pub}, VigilVersion: "0.1.0", Providers: []string{"cpu"},
		Contracts: map[bundle.Role]bundle.Contract{bundle.RolePrimary: c}}
}

// TestServe: vigil-fleet serve, on a broker with mutual TLS and the
// fleet's ACL, as the "fleet" identity, serves a signed bundle from its
// --bundles directory to a vehicle that fetches it by hash and verifies
// it; a hash it does not hold is refused; SIGINT's context ends it
// cleanly, and it prints what it served.
func TestServe(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	broker := mqtttest.Start(t, mqtttest.Options{TLS: pki, ACL: mqtttest.FleetACL})
	store := t.TempDir()
	hash, pol := serveBundle(t, store)
	op := pki.Client("fleet")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--bundles", store, "--broker", broker.URL(), "--tls-ca", pki.CAFile,
			"--tls-cert", op.CertFile, "--tls-key", op.KeyFile, "--progress", "0"}, &out, &errb)
	}()
	eventually(t, 20*time.Second, "serve subscribed", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, errb.String())
		default:
		}
		return strings.Contains(errb.String(), "\tsubscribed\t")
	})
	if !strings.Contains(errb.String(), hash) {
		t.Errorf("serve's log does not name the bundle %s:\n%s", hash, errb.String())
	}

	const vehicle = "veh-serve"
	c := broker.Client(t, vehicle, pki.ClientTLS(vehicle))
	f, err := bundlelink.NewFetcher(bundlelink.FetcherConfig{Vehicle: vehicle, Link: serveLink{c}, Dir: filepath.Join(t.TempDir(), "staging"),
		ChunkBytes: 16 << 10, AnswerTimeout: 2 * time.Second, StallTimeout: 20 * time.Second,
		Preflight: bundlelink.CheckPolicy(pol, time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	sub := f.Subscriptions()[0]
	if err := mqtttest.Subscribe(c, sub.Topic, func(_ mqtt.Client, m mqtt.Message) { sub.Handler(m.Topic(), m.Payload()) }); err != nil {
		t.Fatal(err)
	}
	res, err := f.Fetch(ctx, hash)
	if err != nil {
		t.Fatalf("fetch: %v\n%s", err, errb.String())
	}
	chunks := f.Progress().Chunks
	b, err := bundle.Open(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Verify(pol, time.Now())
	b.Close()
	if err != nil {
		t.Fatalf("the bundle served does not verify: %v", err)
	}
	if _, err := f.Fetch(ctx, strings.Repeat("0", 64)); !errors.Is(err, bundlelink.ErrUnknownBundle) {
		t.Errorf("a hash not in the store: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGINT: %v\n%s", err, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve still running 20 s after SIGINT")
	}
	if got := out.String(); !strings.Contains(got, "index parts, ") || !strings.Contains(got, "1 refused (unknown-bundle 1)") ||
		!strings.Contains(got, " "+strconv.Itoa(chunks)+" chunks") {
		t.Errorf("serve printed %q; want the %d chunks and the refusal", got, chunks)
	}
}

// TestServeRefusals: bad flags and arguments are refused before anything
// connects, each naming the flag.
func TestServeRefusals(t *testing.T) {
	store := t.TempDir()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "--bundles is required"},
		{[]string{"serve", "--bundles", filepath.Join(store, "missing")}, "--bundles"},
		{[]string{"serve", "--bundles", file}, "not a directory"},
		{[]string{"serve", "--bundles", store, "extra"}, "unexpected arguments"},
		{[]string{"serve", "--bundles", store, "--broker", "localhost"}, "--broker"},
		{[]string{"serve", "--bundles", store, "--reconnect-max", "0s"}, "--reconnect-max"},
		{[]string{"serve", "--bundles", store, "--progress", "-1s"}, "--progress"},
		{[]string{"serve", "--bundles", store, "--group", "a/b"}, "--group"},
		{[]string{"serve", "--bundles", store, "--tls-ca", "ca.pem"}, "plain TCP"},
	} {
		_, _, err := fleet(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %q", c.args, err, c.want)
		}
	}
	if entries, _ := os.ReadDir(store); len(entries) != 0 {
		t.Errorf("a refusal wrote into the store: %v", entries)
	}
}
