package command

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Command names a fleet command.
type Command string

const (
	Status   Command = "status"
	Policy   Command = "policy"
	Failover Command = "failover"
	Clear    Command = "clear"
	LogLevel Command = "log-level"
	SyncNow  Command = "sync-now"
	// Checkpoint takes a checkpoint of the vehicle's store now (argument
	// kind: full, incremental or differential).
	Checkpoint Command = "checkpoint"
	// ModelDeploy starts the deployment of a model bundle to one role;
	// ModelRollback stops it, or rolls a promoted or committed one back.
	// Their arguments are sync/rollout/deploywire's DeployArgs and
	// RollbackArgs.
	ModelDeploy   Command = "model-deploy"
	ModelRollback Command = "model-rollback"
	// DrillRun runs a drill scenario (argument name) on a parked
	// vehicle; its report reaches the fleet side on the vehicle's drill
	// topic and in the events stream. Unsafe while moving: a drill
	// injects faults.
	DrillRun Command = "drill-run"
)

var known = map[Command]bool{Status: true, Policy: true, Failover: true, Clear: true, LogLevel: true, SyncNow: true, Checkpoint: true,
	ModelDeploy: true, ModelRollback: true, DrillRun: true}

// Known reports whether c is a command this version understands.
func (c Command) Known() bool { return known[c] }

// TargetAll addresses every vehicle.
const TargetAll = "all"

// Envelope is a fleet command and what makes it safe to act on.
type Envelope struct {
	KeyID    string    // the signing key's id (KeyIDOf)
	Nonce    string    // 16 random bytes, lowercase hex
	IssuedAt time.Time // kept to the millisecond
	Expires  time.Time
	Target   string // a vehicle id, or TargetAll
	Command  Command
	Args     map[string]string
	// CorrelationID ties the response to the request; chosen by the
	// issuer, echoed in Response.
	CorrelationID string
}

// SignedEnvelope is the wire form of a signed envelope.
type SignedEnvelope struct {
	V         int    `json:"v"`
	Payload   []byte `json:"payload"` // the canonical envelope
	Signature []byte `json:"sig"`
}

// Marshal returns the JSON to publish.
func (s SignedEnvelope) Marshal() ([]byte, error) { return json.Marshal(s) }

const (
	wireVersion = 1
	domain      = "vigil-command-v1\n"
	nonceBytes  = 16
	maxRaw      = 64 << 10
)

// envelopeWire is the canonical form; the field order is the signed order.
type envelopeWire struct {
	KeyID         string            `json:"key_id"`
	Nonce         string            `json:"nonce"`
	IssuedAt      int64             `json:"issued_at_ms"`
	Expires       int64             `json:"expires_ms"`
	Target        string            `json:"target"`
	Command       Command           `json:"command"`
	Args          map[string]string `json:"args,omitempty"`
	CorrelationID string            `json:"correlation_id"`
}

// Sentinel errors; Verify wraps exactly one of them.
var (
	ErrMalformed         = errors.New("command: malformed envelope")
	ErrUnsigned          = errors.New("command: unsigned envelope")
	ErrUnknownKey        = errors.New("command: unknown signing key")
	ErrBadSignature      = errors.New("command: bad signature")
	ErrExpired           = errors.New("command: expired")
	ErrNotYetValid       = errors.New("command: issued in the future")
	ErrLifetimeTooLong   = errors.New("command: lifetime too long")
	ErrWrongTarget       = errors.New("command: addressed to another vehicle")
	ErrReplayed          = errors.New("command: replayed nonce")
	ErrUnknownCommand    = errors.New("command: unknown command")
	ErrNonceStore        = errors.New("command: nonce cache unavailable")
	ErrUnsafeWhileMoving = errors.New("command: unsafe while the vehicle is moving")
)

// KeyIDOf names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyIDOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// KeyGen makes a signing key pair from r (crypto/rand when nil).
func KeyGen(r io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, string, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, nil, "", fmt.Errorf("command: generate key: %w", err)
	}
	return pub, priv, KeyIDOf(pub), nil
}

// NewNonce returns 16 bytes from r (crypto/rand when nil) in hex.
func NewNonce(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, nonceBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("command: nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func validNonce(s string) bool {
	if len(s) != 2*nonceBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// check is what both Sign and Verify require of an envelope's shape.
func (e Envelope) check() error {
	switch {
	case e.KeyID == "":
		return fmt.Errorf("%w: no key id", ErrMalformed)
	case !validNonce(e.Nonce):
		return fmt.Errorf("%w: nonce %q is not 32 lowercase hex digits", ErrMalformed, e.Nonce)
	case e.IssuedAt.IsZero() || e.Expires.IsZero():
		return fmt.Errorf("%w: issued_at and expires are required", ErrMalformed)
	case !e.Expires.After(e.IssuedAt):
		return fmt.Errorf("%w: expires %v is not after issued_at %v", ErrMalformed, e.Expires, e.IssuedAt)
	case e.Target == "":
		return fmt.Errorf("%w: no target", ErrMalformed)
	case e.Command == "":
		return fmt.Errorf("%w: no command", ErrMalformed)
	}
	return nil
}

func (e Envelope) canonical() ([]byte, error) {
	return json.Marshal(envelopeWire{
		KeyID: e.KeyID, Nonce: e.Nonce, IssuedAt: e.IssuedAt.UnixMilli(), Expires: e.Expires.UnixMilli(),
		Target: e.Target, Command: e.Command, Args: e.Args, CorrelationID: e.CorrelationID,
	})
}

func signedBytes(payload []byte) []byte { return append([]byte(domain), payload...) }

// Sign signs env with priv. An empty KeyID is filled in from priv; a
// KeyID naming another key is an error. Unknown commands are refused
// here too, so a typo fails at the issuer.
func Sign(env Envelope, priv ed25519.PrivateKey) (SignedEnvelope, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return SignedEnvelope{}, errors.New("command: sign: not an ed25519 private key")
	}
	id := KeyIDOf(priv.Public().(ed25519.PublicKey))
	if env.KeyID == "" {
		env.KeyID = id
	} else if env.KeyID != id {
		return SignedEnvelope{}, fmt.Errorf("command: sign: key id %q does not name this key (%s)", env.KeyID, id)
	}
	if err := env.check(); err != nil {
		return SignedEnvelope{}, fmt.Errorf("command: sign: %w", err)
	}
	if !env.Command.Known() {
		return SignedEnvelope{}, fmt.Errorf("%w %q", ErrUnknownCommand, env.Command)
	}
	payload, err := env.canonical()
	if err != nil {
		return SignedEnvelope{}, fmt.Errorf("command: sign: %w", err)
	}
	return SignedEnvelope{V: wireVersion, Payload: payload, Signature: ed25519.Sign(priv, signedBytes(payload))}, nil
}

// parse decodes the outer form and the envelope, without checking the
// signature.
func parse(raw []byte) (SignedEnvelope, Envelope, error) {
	if len(raw) > maxRaw {
		return SignedEnvelope{}, Envelope{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(raw))
	}
	var s SignedEnvelope
	if err := strictJSON(raw, &s); err != nil {
		return s, Envelope{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if s.V != wireVersion {
		return s, Envelope{}, fmt.Errorf("%w: version %d", ErrMalformed, s.V)
	}
	if len(s.Payload) == 0 {
		return s, Envelope{}, fmt.Errorf("%w: no payload", ErrMalformed)
	}
	var w envelopeWire
	if err := strictJSON(s.Payload, &w); err != nil {
		return s, Envelope{}, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	env := Envelope{
		KeyID: w.KeyID, Nonce: w.Nonce, IssuedAt: time.UnixMilli(w.IssuedAt), Expires: time.UnixMilli(w.Expires),
		Target: w.Target, Command: w.Command, Args: w.Args, CorrelationID: w.CorrelationID,
	}
	if w.IssuedAt == 0 || w.Expires == 0 {
		env.IssuedAt, env.Expires = time.Time{}, time.Time{}
	}
	if err := env.check(); err != nil {
		return s, Envelope{}, err
	}
	return s, env, nil
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if err := d.Decode(new(json.RawMessage)); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}
