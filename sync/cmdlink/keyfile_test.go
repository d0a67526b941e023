package cmdlink_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

func TestKeyFiles(t *testing.T) {
	k := newKeys(t)
	dir := t.TempDir()
	pubPath, privPath := filepath.Join(dir, "op.pub"), filepath.Join(dir, "op.key")
	pubText, privText := cmdlink.MarshalPublicKey(k.pub), cmdlink.MarshalPrivateKey(k.priv)
	if !bytes.Contains(pubText, []byte("key id "+k.id)) || !bytes.Contains(privText, []byte("key id "+k.id)) {
		t.Errorf("no key id comment:\n%s%s", pubText, privText)
	}
	os.WriteFile(pubPath, pubText, 0o644)
	os.WriteFile(privPath, privText, 0o600)
	pub, err := cmdlink.ReadPublicKey(pubPath)
	if err != nil || !pub.Equal(k.pub) {
		t.Fatalf("public: %v", err)
	}
	priv, err := cmdlink.ReadPrivateKey(privPath)
	if err != nil || !priv.Equal(k.priv) {
		t.Fatalf("private: %v", err)
	}
	// A bare seed is a private key too.
	seed := base64.StdEncoding.EncodeToString(k.priv.Seed())
	if p, err := cmdlink.ParsePrivateKey([]byte(seed + "\n")); err != nil || !p.Equal(k.priv) {
		t.Errorf("seed: %v", err)
	}

	os.Chmod(privPath, 0o640)
	if _, err := cmdlink.ReadPrivateKey(privPath); err == nil || !strings.Contains(err.Error(), "too open") || !strings.Contains(err.Error(), privPath) {
		t.Errorf("open permissions: %v", err)
	}
	if _, err := cmdlink.ReadPrivateKey(filepath.Join(dir, "none.key")); err == nil || !strings.Contains(err.Error(), "none.key") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := cmdlink.ReadPublicKey(filepath.Join(dir, "none.pub")); err == nil || !strings.Contains(err.Error(), "none.pub") {
		t.Errorf("missing file: %v", err)
	}

	damaged := append([]byte(nil), k.priv...)
	damaged[40] ^= 1
	bad := map[string]struct {
		text    string
		private bool
		want    string
	}{
		"empty":             {"# only a comment\n", false, "no key"},
		"two lines":         {seed + "\n" + seed + "\n", true, "more than one line"},
		"not base64":        {"!!!\n", false, "not base64"},
		"short":             {base64.StdEncoding.EncodeToString([]byte("short")), false, "not an ed25519 public key"},
		"private as public": {string(privText), false, "private key"},
		"public as private": {string(pubText), true, "public key"},
		"damaged private":   {base64.StdEncoding.EncodeToString(damaged), true, "damaged"},
		"short private":     {base64.StdEncoding.EncodeToString([]byte("short")), true, "not an ed25519 private key"},
	}
	for name, c := range bad {
		var err error
		if c.private {
			_, err = cmdlink.ParsePrivateKey([]byte(c.text))
		} else {
			_, err = cmdlink.ParsePublicKey([]byte(c.text))
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if command.KeyIDOf(ed25519.PublicKey(pub)) != k.id {
		t.Error("key id")
	}
}

// TestModelSigningKeyRefused: a model-signing key file (vigil-fleet model
// keygen) is not a command key: both halves are refused, naming the kind.
func TestModelSigningKeyRefused(t *testing.T) {
	pub, priv, _, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmdlink.ParsePublicKey(bundle.MarshalPublicKey(pub)); err == nil || !strings.Contains(err.Error(), "model-signing key") {
		t.Errorf("a model-signing public key as a command key: %v", err)
	}
	if _, err := cmdlink.ParsePrivateKey(bundle.MarshalPrivateKey(priv)); err == nil || !strings.Contains(err.Error(), "model-signing key") {
		t.Errorf("a model-signing private key as a command key: %v", err)
	}
}
