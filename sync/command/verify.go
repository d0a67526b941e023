package command

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	gosync "sync"
	"time"
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Keys are the trusted public keys by key id (KeyIDOf).
	Keys map[string]ed25519.PublicKey
	// Vehicle is this vehicle's id: envelopes must target it or "all".
	Vehicle string
	// Now is the clock (wall time); required.
	Now func() time.Time
	// MaxSkew is how far the issuer's clock may run ahead of ours, and
	// how long past Expires an envelope is still honoured. Default 30s.
	MaxSkew time.Duration
	// MaxLifetime bounds Expires - IssuedAt. Default 1h.
	MaxLifetime time.Duration
	// Nonces remembers the nonces of accepted envelopes; required.
	Nonces NonceStore
}

// Verifier checks signed envelopes. It is safe for concurrent use.
type Verifier struct {
	cfg VerifierConfig
	mu  gosync.Mutex // orders Spend's Seen and Remember
}

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Vehicle == "" || cfg.Vehicle == TargetAll {
		return nil, fmt.Errorf("command: verifier: vehicle id %q", cfg.Vehicle)
	}
	if cfg.Now == nil || cfg.Nonces == nil {
		return nil, errors.New("command: verifier: Now and Nonces are required")
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 30 * time.Second
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = time.Hour
	}
	keys := make(map[string]ed25519.PublicKey, len(cfg.Keys))
	for id, k := range cfg.Keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("command: verifier: key %q is not an ed25519 public key", id)
		}
		if want := KeyIDOf(k); id != want {
			return nil, fmt.Errorf("command: verifier: key listed as %q has id %q", id, want)
		}
		keys[id] = k
	}
	cfg.Keys = keys
	return &Verifier{cfg: cfg}, nil
}

// Verify checks raw and, when every check passes, spends its nonce so
// that the same envelope is refused from then on: Check, then Spend.
// The checks, in order: well-formed, signed, by a trusted key, signature
// valid, command known, addressed to this vehicle or all, not issued
// beyond the skew in the future, lifetime within bounds, not expired,
// nonce never seen. Each failure wraps its own sentinel error; a failing
// nonce store is ErrNonceStore, and the command is refused.
func (v *Verifier) Verify(raw []byte) (Envelope, error) {
	env, err := v.Check(raw)
	if err != nil {
		return Envelope{}, err
	}
	if err := v.Spend(env); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// Check runs every check of Verify, the nonce's included (it must not
// have been spent), but spends nothing: a command checked on arrival and
// queued is spent by Spend when it is taken for execution, so that one
// refused later (busy, dropped at shutdown) may be sent again. It only
// reads the nonce cache, and is safe to call concurrently with itself
// and with Spend.
func (v *Verifier) Check(raw []byte) (Envelope, error) {
	s, env, err := parse(raw)
	if err != nil {
		// A bare envelope, without the signed wrapper.
		if strictJSON(raw, new(envelopeWire)) == nil {
			return Envelope{}, fmt.Errorf("%w: a bare envelope", ErrUnsigned)
		}
		return Envelope{}, err
	}
	if len(s.Signature) == 0 {
		return Envelope{}, ErrUnsigned
	}
	key, ok := v.cfg.Keys[env.KeyID]
	if !ok {
		return Envelope{}, fmt.Errorf("%w %q", ErrUnknownKey, env.KeyID)
	}
	if len(s.Signature) != ed25519.SignatureSize || !ed25519.Verify(key, signedBytes(s.Payload), s.Signature) {
		return Envelope{}, fmt.Errorf("%w (key %s)", ErrBadSignature, env.KeyID)
	}
	if !env.Command.Known() {
		return Envelope{}, fmt.Errorf("%w %q", ErrUnknownCommand, env.Command)
	}
	if env.Target != v.cfg.Vehicle && env.Target != TargetAll {
		return Envelope{}, fmt.Errorf("%w: %q", ErrWrongTarget, env.Target)
	}
	now := v.cfg.Now()
	if env.IssuedAt.After(now.Add(v.cfg.MaxSkew)) {
		return Envelope{}, fmt.Errorf("%w: issued at %v, now is %v", ErrNotYetValid, env.IssuedAt.UTC(), now.UTC())
	}
	if l := env.Expires.Sub(env.IssuedAt); l > v.cfg.MaxLifetime {
		return Envelope{}, fmt.Errorf("%w: %v, the limit is %v", ErrLifetimeTooLong, l, v.cfg.MaxLifetime)
	}
	if err := v.unexpired(env, now); err != nil {
		return Envelope{}, err
	}
	seen, err := v.cfg.Nonces.Seen(env.Nonce)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrNonceStore, err)
	}
	if seen {
		return Envelope{}, fmt.Errorf("%w %s", ErrReplayed, env.Nonce)
	}
	return env, nil
}

// Spend remembers the nonce of env, an envelope Check passed, so that
// the same envelope is refused from then on. It refuses env as expired
// when it expired since it was checked, and as replayed when its nonce
// was spent since (the same envelope, received twice); of two
// concurrent Spends of one nonce exactly one succeeds. A failing nonce
// store is ErrNonceStore, and nothing is spent.
func (v *Verifier) Spend(env Envelope) error {
	if err := v.unexpired(env, v.cfg.Now()); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	seen, err := v.cfg.Nonces.Seen(env.Nonce)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNonceStore, err)
	}
	if seen {
		return fmt.Errorf("%w %s", ErrReplayed, env.Nonce)
	}
	// Past keepUntil the envelope is refused as expired, so the nonce
	// need not be kept longer.
	if err := v.cfg.Nonces.Remember(env.Nonce, v.keepUntil(env)); err != nil {
		return fmt.Errorf("%w: %v", ErrNonceStore, err)
	}
	return nil
}

// keepUntil is when env is refused as expired: its expiry plus the skew.
func (v *Verifier) keepUntil(env Envelope) time.Time { return env.Expires.Add(v.cfg.MaxSkew) }

func (v *Verifier) unexpired(env Envelope, now time.Time) error {
	if now.After(v.keepUntil(env)) {
		return fmt.Errorf("%w at %v", ErrExpired, env.Expires.UTC())
	}
	return nil
}
