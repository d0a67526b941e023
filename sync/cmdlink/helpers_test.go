package cmdlink_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

func logger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
}

// keys is the operator's key pair and an untrusted one.
type keys struct {
	pub   ed25519.PublicKey
	priv  ed25519.PrivateKey
	id    string
	other ed25519.PrivateKey
}

func newKeys(t *testing.T) keys {
	t.Helper()
	pub, priv, id, err := command.KeyGen(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _, err := command.KeyGen(nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys{pub: pub, priv: priv, id: id, other: other}
}

// recExec records what it executes. Args steer it: fail=bad gives bad
// args, fail=yes a failure, fail=panic a panic, fail=block blocks until
// release is closed (ignoring its context), fail=ctx waits for its
// context, fail=notjson returns a non-JSON result, big=N returns a
// result of N bytes.
type recExec struct {
	vehicle string
	mu      sync.Mutex
	envs    []command.Envelope
	release chan struct{}
	once    sync.Once
	running chan struct{} // receives on each start; buffered
}

// unblock releases the executions blocked (fail=block), now and later.
func (e *recExec) unblock() { e.once.Do(func() { close(e.release) }) }

func newExec(vehicle string) *recExec {
	return &recExec{vehicle: vehicle, release: make(chan struct{}), running: make(chan struct{}, 64)}
}

func (e *recExec) Execute(ctx context.Context, env command.Envelope) (json.RawMessage, error) {
	e.mu.Lock()
	e.envs = append(e.envs, env)
	e.mu.Unlock()
	e.running <- struct{}{}
	switch env.Args["fail"] {
	case "bad":
		return nil, cmdlink.BadArgs("argument fail=bad is bad")
	case "yes":
		return nil, errors.New("backend busy")
	case "panic":
		panic("executor bug")
	case "block":
		<-e.release
		return json.RawMessage(`{"late":true}`), nil
	case "ctx":
		<-ctx.Done()
		return nil, ctx.Err()
	case "notjson":
		return json.RawMessage(`{not json`), nil
	}
	if n := env.Args["big"]; n != "" {
		var size int
		fmt.Sscan(n, &size)
		b, _ := json.Marshal(map[string]string{"pad": string(make([]byte, size))})
		return b, nil
	}
	return json.Marshal(map[string]string{"vehicle": e.vehicle, "command": string(env.Command), "correlation_id": env.CorrelationID})
}

func (e *recExec) executed() []command.Envelope {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]command.Envelope(nil), e.envs...)
}

// events records a receiver's events.
type events struct {
	mu sync.Mutex
	ev []cmdlink.Event
}

func (r *events) record(e cmdlink.Event) {
	r.mu.Lock()
	r.ev = append(r.ev, e)
	r.mu.Unlock()
}

func (r *events) all() []cmdlink.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cmdlink.Event(nil), r.ev...)
}

func (r *events) last(t *testing.T) cmdlink.Event {
	t.Helper()
	all := r.all()
	if len(all) == 0 {
		t.Fatal("no event recorded")
	}
	return all[len(all)-1]
}

// failingNonces is a nonce store whose disk is gone.
type failingNonces struct{}

func (failingNonces) Seen(string) (bool, error)        { return false, nil }
func (failingNonces) Remember(string, time.Time) error { return errors.New("disk on fire") }

func newVerifier(t *testing.T, vehicle string, pub ed25519.PublicKey, nonces command.NonceStore) *command.Verifier {
	t.Helper()
	return verifierFor(t, vehicle, nonces, time.Now, pub)
}

// verifierFor trusts pubs, on the clock now.
func verifierFor(t *testing.T, vehicle string, nonces command.NonceStore, now func() time.Time, pubs ...ed25519.PublicKey) *command.Verifier {
	t.Helper()
	if nonces == nil {
		nonces = command.NewMemoryNonces(now)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, p := range pubs {
		keys[command.KeyIDOf(p)] = p
	}
	v, err := command.NewVerifier(command.VerifierConfig{Keys: keys, Vehicle: vehicle, Now: now, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// envelope is a valid envelope for target, dated now.
func envelope(target string, c command.Command, args map[string]string) command.Envelope {
	n, _ := command.NewNonce(nil)
	now := time.Now().Truncate(time.Millisecond)
	return command.Envelope{Nonce: n, IssuedAt: now, Expires: now.Add(5 * time.Minute), Target: target, Command: c,
		Args: args, CorrelationID: cmdlink.NewCorrelationID()}
}

func sign(t *testing.T, env command.Envelope, priv ed25519.PrivateKey) []byte {
	t.Helper()
	s, err := command.Sign(env, priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signCanonical signs a hand-written canonical payload, bypassing Sign's
// checks (for an unknown command): the signature covers the domain
// prefix and the payload, as sync/command documents.
func signCanonical(t *testing.T, payload string, priv ed25519.PrivateKey) []byte {
	t.Helper()
	sig := ed25519.Sign(priv, append([]byte("vigil-command-v1\n"), payload...))
	b, err := command.SignedEnvelope{V: 1, Payload: []byte(payload), Signature: sig}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// published is one response a receiver gave its Publish.
type published struct {
	topic string
	resp  command.Response
}

// capture is a Publish function that decodes into a channel.
type capture struct {
	t        *testing.T
	ch       chan published
	failures atomic.Int32 // fail this many more calls
	calls    atomic.Int32
}

func newCapture(t *testing.T) *capture { return &capture{t: t, ch: make(chan published, 4096)} }

func (c *capture) publish(topic string, payload []byte) error {
	c.calls.Add(1)
	if c.failures.Add(-1) >= 0 {
		return errors.New("link down")
	}
	r, err := command.DecodeResponse(payload)
	if err != nil {
		c.t.Errorf("receiver published an undecodable response %q: %v", payload, err)
	}
	c.ch <- published{topic, r}
	return nil
}

func (c *capture) next(t *testing.T) published {
	t.Helper()
	select {
	case p := <-c.ch:
		return p
	case <-time.After(20 * time.Second):
		t.Fatal("no response published in 20s")
		return published{}
	}
}

// none asserts that nothing is published for a while (a check that can
// only pass falsely, never fail falsely, under load).
func (c *capture) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case p := <-c.ch:
		t.Fatalf("unexpected response %+v", p)
	case <-time.After(d):
	}
}

// rawClient is a bare paho client for what neither end does (retained
// statuses).
func rawClient(t *testing.T, broker string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("raw-%d", time.Now().UnixNano())).
		SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("raw client connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publishRetained(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func closeWithin(t *testing.T, what string, close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := close(ctx); err != nil {
		t.Errorf("%s Close: %v", what, err)
	}
}
