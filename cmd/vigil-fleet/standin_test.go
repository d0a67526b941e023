package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// startReceiver runs the real command receiver of a stand-in vehicle id
// on broker b: it verifies commands signed by the key in pubFile (a
// memory nonce cache), refuses unsafe ones while moving() says so, hands
// the rest to exec and answers over its own link (TLS when tlsCfg is
// set). On cleanup it closes the receiver, waits for wait (the stand-in's
// own goroutines; may be nil) and closes the link.
func startReceiver(t *testing.T, b *mqtttest.Broker, id, pubFile string, tlsCfg *tls.Config,
	exec cmdlink.ExecutorFunc, moving func() bool, wait func()) {
	t.Helper()
	pub, err := cmdlink.ReadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := command.NewVerifier(command.VerifierConfig{Keys: map[string]ed25519.PublicKey{command.KeyIDOf(pub): pub},
		Vehicle: id, Now: time.Now, Nonces: command.NewMemoryNonces(time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	var link *cmdlink.Link
	r, err := cmdlink.NewReceiver(cmdlink.Config{Vehicle: id, Verifier: v, Exec: exec, Moving: moving,
		Publish: func(topic string, p []byte) error { return link.Publish(topic, p) }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if link, err = cmdlink.DialLink(ctx, cmdlink.LinkConfig{Broker: b.URL(), ClientID: id, TLS: tlsCfg, Log: log}, r.Topics(), r.Handle); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.Close(ctx)
		if wait != nil {
			wait()
		}
		if err := link.Close(ctx); err != nil {
			t.Errorf("%s: link close: %v", id, err)
		}
	})
}
