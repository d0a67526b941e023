package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// Model-signing key files have the layout of the fleet's command key files
// (sync/cmdlink): text, '#' lines and blank lines are comments, and one
// line holds the key in standard padded base64 — the 32-byte public key,
// or the 64-byte private key (seed then public key; a bare 32-byte seed is
// read too). The comments name the kind of key and its id. A file whose
// comments say it is a fleet command key is refused: the two kinds of key
// are kept apart, so that a leaked command key cannot sign models and a
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

// MarshalPublicKey returns the text of a public model-signing key file.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	return fmt.Appendf(nil, "# vigil model-signing key, ed25519 public key\n# key id %s\n%s\n",
		KeyID(pub), base64.StdEncoding.EncodeToString(pub))
}

// MarshalPrivateKey returns the text of a private model-signing key file.
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	return fmt.Appendf(nil, "# vigil model-signing key, ed25519 PRIVATE key: keep it secret (mode 0600)\n# key id %s\n%s\n",
		KeyID(priv.Public().(ed25519.PublicKey)), base64.StdEncoding.EncodeToString(priv))
}

// commandKeyMark is in the comment of every fleet command key file.
var commandKeyMark = []byte("fleet command key")

func keyLine(b []byte) ([]byte, error) {
	var line []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] == '#' && bytes.Contains(l, commandKeyMark) {
			return nil, errors.New("this is a fleet command key; bundles are signed with a model-signing key (vigil-fleet model keygen)")
		}
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		if line != nil {
			return nil, errors.New("more than one line of key data")
		}
		line = l
	}
	if line == nil {
		return nil, errors.New("no key in it")
	}
	raw, err := base64.StdEncoding.DecodeString(string(line))
	if err != nil {
		return nil, fmt.Errorf("the key line is not base64: %v", err)
	}
	return raw, nil
}

// ParsePublicKey parses the text of a public key file.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	raw, err := keyLine(b)
	if err != nil {
		return nil, err
	}
	switch len(raw) {
	case ed25519.PublicKeySize:
		return ed25519.PublicKey(raw), nil
	case ed25519.PrivateKeySize:
		return nil, errors.New("this is a private key; give the public key file (.pub)")
	}
	return nil, fmt.Errorf("%d bytes, not an ed25519 public key (%d)", len(raw), ed25519.PublicKeySize)
}

// ParsePrivateKey parses the text of a private key file.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	raw, err := keyLine(b)
	if err != nil {
		return nil, err
	}
	switch len(raw) {
	case ed25519.SeedSize:
		// A public key file has the same length; its comment tells.
		if bytes.Contains(b, []byte("public key")) {
			return nil, errors.New("this is a public key; give the private key file (.key)")
		}
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		priv := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(priv, raw) {
			return nil, errors.New("its public half does not match its seed: the file is damaged")
		}
		return priv, nil
	}
	return nil, fmt.Errorf("%d bytes, not an ed25519 private key (%d)", len(raw), ed25519.PrivateKeySize)
}

// ReadPublicKey reads a public key file; errors name the file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := readKeyFile(path, false)
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
	b, err := readKeyFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("model-signing private key: %w", err)
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("model-signing private key %s: %w", path, err)
	}
	return priv, nil
}

// readKeyFile reads at most 64 KiB (a key file is a few lines); a private
// one must be closed to the group and others.
func readKeyFile(path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	if m := st.Mode().Perm(); private && m&0o077 != 0 {
		return nil, fmt.Errorf("%s: permissions %04o are too open; the group and others must have no access (chmod 600 %s)", path, m, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 64<<10 {
		return nil, fmt.Errorf("%s: too large for a key file", path)
	}
	return b, nil
}
