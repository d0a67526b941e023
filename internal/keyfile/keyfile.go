// Package keyfile reads and writes Vigil's ed25519 key files: the fleet's
// command keys (sync/cmdlink) and the model-signing keys (models/bundle).
// A key file is text: lines starting with '#' and blank lines are
// comments, and exactly one other line holds the key in standard padded
// base64 — the 32-byte public key, or the 64-byte private key (the seed,
// then the public key; a bare 32-byte seed is read too). The writer's
// comments name the kind of key and its id. The two kinds are kept apart:
// a file whose comments name the other kind is refused, so that a leaked
// command key cannot sign models and a model-signing key cannot command
// vehicles. It imports only the standard library.
package keyfile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
)

// Kind is a kind of key as its files name it.
type Kind struct {
	// Name is in the first comment of its files, e.g. "fleet command key".
	Name string
	// Other is the other kind's name, refused with Instead.
	Other, Instead string
}

// MarshalPublic returns the text of a public key file of kind k.
func MarshalPublic(k Kind, id string, pub ed25519.PublicKey) []byte {
	return fmt.Appendf(nil, "# vigil %s, ed25519 public key\n# key id %s\n%s\n", k.Name, id, base64.StdEncoding.EncodeToString(pub))
}

// MarshalPrivate returns the text of a private key file of kind k.
func MarshalPrivate(k Kind, id string, priv ed25519.PrivateKey) []byte {
	return fmt.Appendf(nil, "# vigil %s, ed25519 PRIVATE key: keep it secret (mode 0600)\n# key id %s\n%s\n", k.Name, id, base64.StdEncoding.EncodeToString(priv))
}

// keyLine returns the bytes of the file's one key line.
func keyLine(b []byte, k Kind) ([]byte, error) {
	var line []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] == '#' && k.Other != "" && bytes.Contains(l, []byte(k.Other)) {
			return nil, fmt.Errorf("this is a %s; %s", k.Other, k.Instead)
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

// ParsePublic parses the text of a public key file of kind k.
func ParsePublic(b []byte, k Kind) (ed25519.PublicKey, error) {
	raw, err := keyLine(b, k)
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

// ParsePrivate parses the text of a private key file of kind k.
func ParsePrivate(b []byte, k Kind) (ed25519.PrivateKey, error) {
	raw, err := keyLine(b, k)
	if err != nil {
		return nil, err
	}
	switch len(raw) {
	case ed25519.SeedSize:
		// A bare seed; a public key file has the same length, and only
		// its comments tell them apart.
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

// Read reads a key file of at most 64 KiB (a key file is a few lines). A
// private one that the group or others may access is refused, as ssh
// does.
func Read(path string, private bool) ([]byte, error) {
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
