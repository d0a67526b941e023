package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/vigil-av/vigil/internal/keyfile"
)

// Model-signing key files have the layout of the fleet's command key files
// (internal/keyfile): a file whose comments say it is a fleet command key
// is refused, so that a leaked command key cannot sign models and a
// model-signing key cannot command vehicles.

// keyIDLen is the length of a key id in hex digits.
const keyIDLen = 16

// KeyID names a public key: the first 8 bytes of its SHA-256 in hex, as
// command keys are named.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:keyIDLen/2])
}

// GenerateKey makes a model-signing key pair from r (crypto/rand when
// nil) and returns its key id.
func GenerateKey(r io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, string, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, nil, "", fmt.Errorf("bundle: generate key: %w", err)
	}
	return pub, priv, KeyID(pub), nil
}

// modelKey is the kind of key model-signing key files hold.
var modelKey = keyfile.Kind{
	Name:    "model-signing key",
	Other:   "fleet command key",
	Instead: "bundles are signed with a model-signing key (vigil-fleet model keygen)",
}

// MarshalPublicKey returns the text of a public model-signing key file.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	return keyfile.MarshalPublic(modelKey, KeyID(pub), pub)
}

// MarshalPrivateKey returns the text of a private model-signing key file.
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	return keyfile.MarshalPrivate(modelKey, KeyID(priv.Public().(ed25519.PublicKey)), priv)
}

// ParsePublicKey parses the text of a public key file.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) { return keyfile.ParsePublic(b, modelKey) }

// ParsePrivateKey parses the text of a private key file.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) { return keyfile.ParsePrivate(b, modelKey) }

// ReadPublicKey reads a public key file; errors name the file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := keyfile.Read(path, false)
	if err != nil {
		return nil, fmt.Errorf("model-signing public key: %w", err)
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("model-signing public key %s: %w", path, err)
	}
	return pub, nil
}

// ReadPrivateKey reads a private key file; errors name the file. A file
// the group or others may access is refused, as ssh does.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := keyfile.Read(path, true)
	if err != nil {
		return nil, fmt.Errorf("model-signing private key: %w", err)
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("model-signing private key %s: %w", path, err)
	}
	return priv, nil
}
