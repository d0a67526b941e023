package cmdlink

import (
	"crypto/ed25519"
	"fmt"

	"github.com/vigil-av/vigil/internal/keyfile"
	"github.com/vigil-av/vigil/sync/command"
)

// Key files, as `vigil-fleet keygen` writes them and the daemon's
// sync.commands.trusted_keys reads them, are text: lines starting with
// '#' and blank lines are comments, and exactly one other line holds the
// key in standard base64 (padded):
//
//   - a public key file holds the 32-byte ed25519 public key;
//   - a private key file holds the 64-byte ed25519 private key (the
//     32-byte seed followed by the public key); a bare 32-byte seed is
//     accepted too.
//
// The writer adds comments naming the kind of key and its key id
// (command.KeyIDOf); the reader refuses a file whose comments say it is a
// model-signing key (internal/keyfile).

// commandKey is the kind of key command key files hold.
var commandKey = keyfile.Kind{
	Name:    "fleet command key",
	Other:   "model-signing key",
	Instead: "fleet commands are signed with a command key (vigil-fleet keygen)",
}

// MarshalPublicKey returns the text of a public key file.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	return keyfile.MarshalPublic(commandKey, command.KeyIDOf(pub), pub)
}

// MarshalPrivateKey returns the text of a private key file.
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	return keyfile.MarshalPrivate(commandKey, command.KeyIDOf(priv.Public().(ed25519.PublicKey)), priv)
}

// ParsePublicKey parses the text of a public key file.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) { return keyfile.ParsePublic(b, commandKey) }

// ParsePrivateKey parses the text of a private key file.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	return keyfile.ParsePrivate(b, commandKey)
}

// ReadPublicKey reads a public key file; errors name the file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := keyfile.Read(path, false)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}

// ReadPrivateKey reads a private key file; errors name the file. A file
// that others than its owner may read is refused, as ssh does.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := keyfile.Read(path, true)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return priv, nil
}
