package command

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// seq is a deterministic source for keys and nonces.
type seq byte

func (s *seq) Read(b []byte) (int, error) {
	for i := range b {
		*s++
		b[i] = byte(*s)
	}
	return len(b), nil
}

type fixture struct {
	priv    ed25519.PrivateKey
	keyID   string
	other   ed25519.PrivateKey
	clock   *fakeClock
	v       *Verifier
	nonceRd seq
}

func newFixture(t testing.TB, nonces func(now func() time.Time) NonceStore) *fixture {
	t.Helper()
	r := seq(0)
	pub, priv, id, err := KeyGen(&r)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _, _ := KeyGen(nil)
	f := &fixture{priv: priv, keyID: id, other: other, clock: &fakeClock{t0}, nonceRd: 100}
	if nonces == nil {
		nonces = func(now func() time.Time) NonceStore { return NewMemoryNonces(now) }
	}
	f.v, err = NewVerifier(VerifierConfig{
		Keys: map[string]ed25519.PublicKey{id: pub}, Vehicle: "veh-1", Now: f.clock.Now,
		MaxSkew: 30 * time.Second, MaxLifetime: time.Hour, Nonces: nonces(f.clock.Now),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) env(t testing.TB) Envelope {
	n, err := NewNonce(&f.nonceRd)
	if err != nil {
		t.Fatal(err)
	}
	return Envelope{Nonce: n, IssuedAt: t0, Expires: t0.Add(10 * time.Minute), Target: "veh-1",
		Command: LogLevel, Args: map[string]string{"level": "debug", "a": "b"}, CorrelationID: "c-1"}
}

func marshal(t testing.TB, s SignedEnvelope) []byte {
	t.Helper()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) signed(t testing.TB, edit func(*Envelope)) []byte {
	t.Helper()
	e := f.env(t)
	if edit != nil {
		edit(&e)
	}
	s, err := Sign(e, f.priv)
	if err != nil {
		t.Fatal(err)
	}
	return marshal(t, s)
}

// resign signs a hand-made canonical payload, bypassing Sign's checks.
func (f *fixture) resign(t *testing.T, w envelopeWire) []byte {
	p, _ := json.Marshal(w)
	return marshal(t, SignedEnvelope{V: 1, Payload: p, Signature: ed25519.Sign(f.priv, signedBytes(p))})
}

func TestVerify(t *testing.T) {
	f := newFixture(t, nil)
	good := f.signed(t, nil)
	env, err := f.v.Verify(good)
	if err != nil {
		t.Fatal(err)
	}
	if env.Command != LogLevel || env.Args["level"] != "debug" || env.KeyID != f.keyID || !env.IssuedAt.Equal(t0) || env.CorrelationID != "c-1" {
		t.Errorf("envelope %+v", env)
	}
	if _, err := f.v.Verify(good); !errors.Is(err, ErrReplayed) {
		t.Errorf("second time: %v", err)
	}
	if _, err := f.v.Verify(f.signed(t, func(e *Envelope) { e.Target = TargetAll })); err != nil {
		t.Errorf("target all: %v", err)
	}
	if _, err := f.v.Verify(f.signed(t, func(e *Envelope) { e.IssuedAt = t0.Add(29 * time.Second); e.Expires = t0.Add(time.Hour) })); err != nil {
		t.Errorf("within skew: %v", err)
	}

	var s SignedEnvelope
	json.Unmarshal(f.signed(t, nil), &s)
	tampered := bytes.Replace(s.Payload, []byte("debug"), []byte("error"), 1)
	otherSig, _ := Sign(f.env(t), f.other)
	otherSig.Payload = bytes.Replace(otherSig.Payload, []byte(KeyIDOf(f.other.Public().(ed25519.PublicKey))), []byte(f.keyID), 1)
	base := f.env(t)
	wire := func(edit func(*envelopeWire)) []byte {
		w := envelopeWire{KeyID: f.keyID, Nonce: base.Nonce, IssuedAt: t0.UnixMilli(), Expires: t0.Add(time.Minute).UnixMilli(),
			Target: "veh-1", Command: Status, CorrelationID: "x"}
		edit(&w)
		return f.resign(t, w)
	}
	bareEnv, _ := json.Marshal(envelopeWire{KeyID: f.keyID, Nonce: base.Nonce, IssuedAt: 1, Expires: 2, Target: "veh-1", Command: Status})

	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not json", []byte("hello"), ErrMalformed},
		{"wrong version", []byte(`{"v":2,"payload":"e30=","sig":"AA=="}`), ErrMalformed},
		{"unknown member", []byte(`{"v":1,"payload":"e30=","sig":"AA==","x":1}`), ErrMalformed},
		{"trailing data", append(f.signed(t, nil), []byte(" {}")...), ErrMalformed},
		{"payload not an envelope", []byte(`{"v":1,"payload":"` + base64.StdEncoding.EncodeToString([]byte(`{"x":1}`)) + `","sig":"AA=="}`), ErrMalformed},
		{"bad nonce", wire(func(w *envelopeWire) { w.Nonce = "xyz" }), ErrMalformed},
		{"expires before issued", wire(func(w *envelopeWire) { w.Expires = w.IssuedAt }), ErrMalformed},
		{"unsigned", marshal(t, SignedEnvelope{V: 1, Payload: s.Payload}), ErrUnsigned},
		{"bare envelope", bareEnv, ErrUnsigned},
		{"unknown key", marshal(t, func() SignedEnvelope { s, _ := Sign(f.env(t), f.other); return s }()), ErrUnknownKey},
		{"tampered", marshal(t, SignedEnvelope{V: 1, Payload: tampered, Signature: s.Signature}), ErrBadSignature},
		{"forged with another key", marshal(t, otherSig), ErrBadSignature},
		{"short signature", marshal(t, SignedEnvelope{V: 1, Payload: s.Payload, Signature: s.Signature[:10]}), ErrBadSignature},
		{"unknown command", wire(func(w *envelopeWire) { w.Command = "reboot" }), ErrUnknownCommand},
		{"wrong target", f.signed(t, func(e *Envelope) { e.Target = "veh-2" }), ErrWrongTarget},
		{"from the future", f.signed(t, func(e *Envelope) { e.IssuedAt = t0.Add(31 * time.Second); e.Expires = t0.Add(time.Hour) }), ErrNotYetValid},
		{"lifetime", f.signed(t, func(e *Envelope) { e.Expires = t0.Add(time.Hour + time.Millisecond) }), ErrLifetimeTooLong},
		{"expired", f.signed(t, func(e *Envelope) { e.IssuedAt = t0.Add(-time.Hour); e.Expires = t0.Add(-31 * time.Second) }), ErrExpired},
		{"replayed", good, ErrReplayed},
	}
	sentinels := []error{ErrMalformed, ErrUnsigned, ErrUnknownKey, ErrBadSignature, ErrExpired, ErrNotYetValid,
		ErrLifetimeTooLong, ErrWrongTarget, ErrReplayed, ErrUnknownCommand}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.v.Verify(c.raw)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			for _, s := range sentinels {
				if s != c.want && errors.Is(err, s) {
					t.Errorf("err %v also matches %v", err, s)
				}
			}
		})
	}
}

func TestExpiryBoundaryAndPrune(t *testing.T) {
	f := newFixture(t, nil)
	raw := f.signed(t, func(e *Envelope) { e.Expires = t0.Add(time.Minute) })
	f.clock.t = t0.Add(time.Minute + 30*time.Second) // at the end of the skew allowance
	if _, err := f.v.Verify(raw); err != nil {
		t.Fatal(err)
	}
	mem := f.v.cfg.Nonces.(*MemoryNonces)
	if mem.Len() != 1 {
		t.Fatalf("%d nonces", mem.Len())
	}
	f.clock.t = f.clock.t.Add(time.Millisecond)
	if _, err := f.v.Verify(raw); !errors.Is(err, ErrExpired) {
		t.Errorf("after expiry: %v", err)
	}
	if _, err := f.v.Verify(f.signed(t, func(e *Envelope) { e.IssuedAt = f.clock.t; e.Expires = f.clock.t.Add(time.Minute) })); err != nil {
		t.Fatal(err)
	}
	if mem.Len() != 1 {
		t.Errorf("expired nonce not pruned: %d nonces", mem.Len())
	}
}

// A storage.Store is what the daemon gives StateNonces.
var _ StateKV = (*storage.Store)(nil)

func openStore(t *testing.T, dir string) *storage.Store {
	t.Helper()
	cfg := storage.DefaultConfig()
	cfg.Dir = dir
	s, err := storage.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func closeStore(t *testing.T, s *storage.Store) {
	t.Helper()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestReplayAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	st := openStore(t, dir)
	var ns *StateNonces
	f := newFixture(t, func(now func() time.Time) NonceStore {
		var err error
		if ns, err = NewStateNonces(st, now); err != nil {
			t.Fatal(err)
		}
		return ns
	})
	raw := f.signed(t, nil)
	short := f.signed(t, func(e *Envelope) { e.Expires = t0.Add(time.Second) })
	if _, err := f.v.Verify(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(short); err != nil {
		t.Fatal(err)
	}
	closeStore(t, st)

	st = openStore(t, dir)
	defer closeStore(t, st)
	ns2, err := NewStateNonces(st, f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if ns2.Len() != 2 {
		t.Fatalf("%d nonces after restart", ns2.Len())
	}
	f.v.cfg.Nonces = ns2
	if _, err := f.v.Verify(raw); !errors.Is(err, ErrReplayed) {
		t.Errorf("replay after restart: %v", err)
	}
	// Later, the short-lived nonce is pruned when the next is remembered.
	f.clock.t = t0.Add(time.Minute)
	if _, err := f.v.Verify(f.signed(t, func(e *Envelope) { e.IssuedAt = f.clock.t; e.Expires = f.clock.t.Add(time.Minute) })); err != nil {
		t.Fatal(err)
	}
	if ns2.Len() != 2 {
		t.Errorf("%d nonces, want 2 after pruning", ns2.Len())
	}
	if _, err := f.v.Verify(raw); !errors.Is(err, ErrReplayed) {
		t.Errorf("replay after pruning: %v", err)
	}
}

type failingKV struct{ StateKV }

func (failingKV) PutState(string, []byte) error { return errors.New("disk on fire") }

func TestStateNoncesErrors(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	defer closeStore(t, st)
	now := func() time.Time { return t0 }
	if err := st.PutState(StateNonceKey, []byte{9, 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStateNonces(st, now); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt value: %v", err)
	}
	st.DeleteState(StateNonceKey)
	ns, err := NewStateNonces(failingKV{st}, now)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(func() time.Time) NonceStore { return ns })
	if _, err := f.v.Verify(f.signed(t, nil)); !errors.Is(err, ErrNonceStore) {
		t.Errorf("failing store: %v", err)
	}
	if err := ns.Remember("zz", t0); err == nil {
		t.Error("bad nonce remembered")
	}

	full, _ := NewStateNonces(st, now)
	for range MaxStateNonces {
		n, _ := NewNonce(nil)
		full.m[n] = t0.Add(time.Hour) // fill without a write per nonce
	}
	n, _ := NewNonce(nil)
	if err := full.Remember(n, t0.Add(time.Hour)); !errors.Is(err, ErrNonceCacheFull) {
		t.Errorf("full cache: %v", err)
	}
	delete(full.m, n)
	for k := range full.m {
		delete(full.m, k)
		break
	}
	if err := full.Remember(n, t0.Add(time.Hour)); err != nil {
		t.Errorf("a cache one short of full: %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	_, priv, _, _ := KeyGen(nil)
	ok := Envelope{Nonce: strings.Repeat("ab", 16), IssuedAt: t0, Expires: t0.Add(time.Minute), Target: "v", Command: Status}
	cases := map[string]func(*Envelope){
		"unknown command":  func(e *Envelope) { e.Command = "reboot" },
		"other key id":     func(e *Envelope) { e.KeyID = "0011223344556677" },
		"no nonce":         func(e *Envelope) { e.Nonce = "" },
		"upper-case nonce": func(e *Envelope) { e.Nonce = strings.Repeat("AB", 16) },
		"no target":        func(e *Envelope) { e.Target = "" },
		"no expiry":        func(e *Envelope) { e.Expires = time.Time{} },
	}
	for name, edit := range cases {
		e := ok
		edit(&e)
		if _, err := Sign(e, priv); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := Sign(ok, priv[:10]); err == nil {
		t.Error("short key accepted")
	}
	a, _ := Sign(ok, priv)
	b, _ := Sign(ok, priv)
	if !bytes.Equal(a.Payload, b.Payload) || !bytes.HasPrefix(a.Payload, []byte(`{"key_id":`)) {
		t.Errorf("canonical form not stable: %s", a.Payload)
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	pub, _, id, _ := KeyGen(nil)
	now := func() time.Time { return t0 }
	mem := NewMemoryNonces(now)
	bad := []VerifierConfig{
		{Keys: map[string]ed25519.PublicKey{id: pub}, Vehicle: "", Now: now, Nonces: mem},
		{Keys: map[string]ed25519.PublicKey{id: pub}, Vehicle: "all", Now: now, Nonces: mem},
		{Keys: map[string]ed25519.PublicKey{id: pub}, Vehicle: "v", Nonces: mem},
		{Keys: map[string]ed25519.PublicKey{id: pub}, Vehicle: "v", Now: now},
		{Keys: map[string]ed25519.PublicKey{"wrong": pub}, Vehicle: "v", Now: now, Nonces: mem},
		{Keys: map[string]ed25519.PublicKey{id: pub[:5]}, Vehicle: "v", Now: now, Nonces: mem},
	}
	for i, c := range bad {
		if _, err := NewVerifier(c); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}

func TestConcurrentVerifyAcceptsOnce(t *testing.T) {
	f := newFixture(t, nil)
	raw := f.signed(t, nil)
	errs := make(chan error, 8)
	for range 8 {
		go func() { _, err := f.v.Verify(raw); errs <- err }()
	}
	ok := 0
	for range 8 {
		if err := <-errs; err == nil {
			ok++
		} else if !errors.Is(err, ErrReplayed) {
			t.Error(err)
		}
	}
	if ok != 1 {
		t.Errorf("accepted %d times", ok)
	}
}

func TestResponse(t *testing.T) {
	good := []Response{
		{CorrelationID: "c", OK: true, Code: CodeOK, Result: json.RawMessage(`{"mode":"hot"}`)},
		{CorrelationID: "c", Code: CodeUnsafeWhileMoving, Message: "vehicle moving"},
	}
	for _, r := range good {
		b, err := EncodeResponse(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeResponse(b)
		if err != nil || got.CorrelationID != r.CorrelationID || got.Code != r.Code || string(got.Result) != string(r.Result) {
			t.Errorf("%s: %+v, %v", b, got, err)
		}
	}
	for _, r := range []Response{{OK: true, Code: CodeFailed}, {Code: CodeOK}, {OK: true, Code: CodeOK, Result: json.RawMessage("{")}} {
		if _, err := EncodeResponse(r); !errors.Is(err, ErrBadResponse) {
			t.Errorf("%+v: %v", r, err)
		}
	}
	for _, s := range []string{``, `{"v":2,"ok":true,"code":"ok"}`, `{"v":1,"ok":false,"code":"ok"}`, `{"v":1}`} {
		if _, err := DecodeResponse([]byte(s)); !errors.Is(err, ErrBadResponse) {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestSafety(t *testing.T) {
	cases := []struct {
		c      Command
		unsafe bool
	}{
		{Status, false}, {LogLevel, false}, {SyncNow, false}, {Checkpoint, false},
		{Policy, true}, {Failover, true}, {Clear, true}, {"reboot", true},
	}
	for _, c := range cases {
		if got := UnsafeWhileMoving(c.c); got != c.unsafe {
			t.Errorf("%s: unsafe %v", c.c, got)
		}
		if err := Allowed(c.c, true); (err != nil) != c.unsafe || (err != nil && !errors.Is(err, ErrUnsafeWhileMoving)) {
			t.Errorf("%s while moving: %v", c.c, err)
		}
		if err := Allowed(c.c, false); err != nil {
			t.Errorf("%s while stopped: %v", c.c, err)
		}
	}
}

// Check spends nothing; Spend spends once, and refuses an envelope that
// expired or was spent since it was checked.
func TestCheckThenSpend(t *testing.T) {
	f := newFixture(t, nil)
	raw := f.signed(t, nil)
	for range 3 {
		if _, err := f.v.Check(raw); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	env, _ := f.v.Check(raw)
	if err := f.v.Spend(env); err != nil {
		t.Fatalf("Spend: %v", err)
	}
	if _, err := f.v.Check(raw); !errors.Is(err, ErrReplayed) {
		t.Errorf("Check after Spend: %v, want replayed", err)
	}
	if err := f.v.Spend(env); !errors.Is(err, ErrReplayed) {
		t.Errorf("Spend twice: %v, want replayed", err)
	}

	// Checked while valid, spent after its expiry (plus the skew).
	late, err := f.v.Check(f.signed(t, func(e *Envelope) { e.Expires = t0.Add(time.Minute) }))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.t = t0.Add(time.Minute + 31*time.Second)
	if err := f.v.Spend(late); !errors.Is(err, ErrExpired) {
		t.Errorf("Spend after expiry: %v, want expired", err)
	}

	// Every check of Verify is Check's: each class, nothing spent.
	f.clock.t = t0
	for name, raw := range map[string][]byte{
		"unknown key": func() []byte {
			s, _ := Sign(f.env(t), f.other)
			return marshal(t, s)
		}(),
		"wrong target": f.signed(t, func(e *Envelope) { e.Target = "veh-2" }),
		"expired":      f.signed(t, func(e *Envelope) { e.IssuedAt = t0.Add(-time.Hour); e.Expires = t0.Add(-time.Minute) }),
	} {
		if _, err := f.v.Check(raw); err == nil {
			t.Errorf("%s: Check passed", name)
		}
	}
}

func TestConcurrentSpendOnce(t *testing.T) {
	f := newFixture(t, nil)
	env, err := f.v.Check(f.signed(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- f.v.Spend(env) }()
	}
	ok := 0
	for range 8 {
		if err := <-errs; err == nil {
			ok++
		} else if !errors.Is(err, ErrReplayed) {
			t.Error(err)
		}
	}
	if ok != 1 {
		t.Errorf("spent %d times", ok)
	}
}

// BenchmarkCheck measures what the receiver does for each message on
// arrival: a valid envelope (the signature verified) and a forged one
// (a trusted key id, a bad signature: the same work).
func BenchmarkCheck(b *testing.B) {
	f := newFixture(b, nil)
	good := f.signed(b, nil)
	other, _ := Sign(f.env(b), f.other)
	forged := marshal(b, SignedEnvelope{V: 1, Payload: f.signedPayload(b), Signature: other.Signature})
	b.Run("valid", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.v.Check(good); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("forged", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.v.Check(forged); !errors.Is(err, ErrBadSignature) {
				b.Fatal(err)
			}
		}
	})
}

// signedPayload is the canonical payload of a valid envelope.
func (f *fixture) signedPayload(t testing.TB) []byte {
	var s SignedEnvelope
	if err := json.Unmarshal(f.signed(t, nil), &s); err != nil {
		t.Fatal(err)
	}
	return s.Payload
}
