package bundle

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	pub, priv, id, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if id != KeyID(pub) || len(id) != keyIDLen {
		t.Errorf("key id %q", id)
	}
	dir := t.TempDir()
	pubPath, privPath := filepath.Join(dir, "m.pub"), filepath.Join(dir, "m.key")
	writeFile(t, pubPath, MarshalPublicKey(pub))
	writeFile(t, privPath, MarshalPrivateKey(priv))
	if err := os.Chmod(privPath, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{MarshalPublicKey(pub), MarshalPrivateKey(priv)} {
		if !bytes.Contains(b, []byte("model-signing key")) || !bytes.Contains(b, []byte("key id "+id)) {
			t.Errorf("the file does not say what it holds:\n%s", b)
		}
	}
	gotPub, err := ReadPublicKey(pubPath)
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("public key read back: %v", err)
	}
	gotPriv, err := ReadPrivateKey(privPath)
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("private key read back: %v", err)
	}
	// A bare seed is a private key too.
	seed := "# seed\n" + b64(priv.Seed()) + "\n"
	if k, err := ParsePrivateKey([]byte(seed)); err != nil || !k.Equal(priv) {
		t.Errorf("seed: %v", err)
	}

	damaged := append(ed25519.PrivateKey{}, priv...)
	damaged[40] ^= 1
	for name, c := range map[string]struct {
		data    string
		private bool
		mention string
	}{
		"a command key":         {"# vigil fleet command key, ed25519 public key\n" + b64(pub) + "\n", false, "fleet command key"},
		"a command private key": {"# vigil fleet command key, ed25519 PRIVATE key\n" + b64(priv) + "\n", true, "fleet command key"},
		"private for public":    {string(MarshalPrivateKey(priv)), false, "this is a private key"},
		"public for private":    {string(MarshalPublicKey(pub)), true, "this is a public key"},
		"two key lines":         {b64(pub) + "\n" + b64(pub) + "\n", false, "more than one line"},
		"no key":                {"# nothing\n", false, "no key"},
		"not base64":            {"!!!\n", false, "not base64"},
		"wrong length":          {b64([]byte("short")) + "\n", true, "not an ed25519 private key"},
		"damaged private key":   {b64(damaged) + "\n", true, "does not match its seed"},
	} {
		var err error
		if c.private {
			_, err = ParsePrivateKey([]byte(c.data))
		} else {
			_, err = ParsePublicKey([]byte(c.data))
		}
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: %v, want mention of %q", name, err, c.mention)
		}
	}

	// A private key others may read is refused and left as it is.
	if err := os.Chmod(privPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivateKey(privPath); err == nil || !strings.Contains(err.Error(), "chmod 600 "+privPath) {
		t.Errorf("open permissions: %v", err)
	}
	if _, err := ReadPublicKey(filepath.Join(dir, "none.pub")); err == nil || !strings.Contains(err.Error(), "none.pub") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ReadPrivateKey(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("a directory: %v", err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
