package cmdlink

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"

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
// (command.KeyIDOf); the reader ignores them.

// MarshalPublicKey returns the text of a public key file.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	return fmt.Appendf(nil, "# vigil fleet command key, ed25519 public key\n# key id %s\n%s\n",
		command.KeyIDOf(pub), base64.StdEncoding.EncodeToString(pub))
}

// MarshalPrivateKey returns the text of a private key file.
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	return fmt.Appendf(nil, "# vigil fleet command key, ed25519 PRIVATE key: keep it secret (mode 0600)\n# key id %s\n%s\n",
		command.KeyIDOf(priv.Public().(ed25519.PublicKey)), base64.StdEncoding.EncodeToString(priv))
}

func keyLine(b []byte) ([]byte, error) {
	var line []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
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
		// A bare seed; a public key file has the same length, and
		// nothing tells them apart but the file's name and comments.
		if bytes.Contains(b, []byte("public key")) {
			return nil, errors.New("this is a public key; give the private key file")
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
	b, err := os.ReadFile(path)
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
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("private key %s: a directory", path)
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("private key %s: permissions %04o are too open; the group and others must have no access (chmod 600 %s)", path, m, path)
	}
	b, err := readAll(f)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return priv, nil
}

// readAll reads at most 64 KiB: a key file is a few lines.
func readAll(f *os.File) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 64<<10 {
		return nil, errors.New("too large for a key file")
	}
	return b, nil
}
