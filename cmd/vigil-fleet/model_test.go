package main

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/demo"
)

func TestModelKeygen(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "models-2026")
	out, _, err := fleet(t, "model", "keygen", "--out", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, prefix+".key"); m != 0o600 {
		t.Errorf("private key mode %04o", m)
	}
	if m := mode(t, prefix+".pub"); m != 0o644 {
		t.Errorf("public key mode %04o", m)
	}
	pub, err := bundle.ReadPublicKey(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := bundle.ReadPrivateKey(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Error("the files hold different keys")
	}
	if !strings.Contains(out, "key id:      "+bundle.KeyID(pub)+"\n") {
		t.Errorf("key id not printed:\n%s", out)
	}
	privBefore, _ := os.ReadFile(prefix + ".key")
	if _, _, err := fleet(t, "model", "keygen", "--out", prefix); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second keygen: %v", err)
	}
	if after, _ := os.ReadFile(prefix + ".key"); !bytes.Equal(after, privBefore) {
		t.Error("the private key changed")
	}
	os.Remove(prefix + ".key")
	if _, _, err := fleet(t, "model", "keygen", "--out", prefix); err == nil || !strings.Contains(err.Error(), prefix+".pub exists") {
		t.Errorf("with the public key left: %v", err)
	}
	if _, err := os.Stat(prefix + ".key"); err == nil {
		t.Error("a private key was written next to an old public key")
	}
	dir := t.TempDir()
	if _, _, err := fleet(t, "model", "keygen", "--out", dir); err != nil {
		t.Fatal(err)
	}
	if mode(t, filepath.Join(dir, "model-signing.key")) != 0o600 || mode(t, filepath.Join(dir, "model-signing.pub")) != 0o644 {
		t.Error("directory form")
	}
	for _, args := range [][]string{{"model", "keygen"}, {"model", "keygen", "--out", dir + "/k", "extra"}} {
		if _, _, err := fleet(t, args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

// modelFiles writes a directory of model files: the real demo primary and
// a note, and returns it.
func modelFiles(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pilotnet")
	model, err := demo.Generate(demo.RolePrimary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "primary.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes", "README.txt"), []byte("PilotNet primary\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// modelKeygen makes a model-signing key pair and returns the prefix.
func modelKeygen(t *testing.T) string {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "msk")
	if _, stderr, err := fleet(t, "model", "keygen", "--out", prefix); err != nil {
		t.Fatalf("model keygen: %v\n%s", err, stderr)
	}
	return prefix
}

// packArgs are the flags of a good model pack of files into out.
func packArgs(files, out string, extra ...string) []string {
	return append([]string{"model", "pack", "--dir", files, "--name", "pilotnet", "--version", "2",
		"--roles", "primary,shadow", "--min-vigil", "0.1.0", "--out", out}, extra...)
}

func mustFleet(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := fleet(t, args...)
	if err != nil {
		t.Fatalf("%q: %v\n%s", args, err, stderr)
	}
	return out
}

// TestModelBundleSession runs an operator's session: pack a real model,
// inspect, sign, verify as a vehicle would; sign a directory bundle in
// place and into a tar.
func TestModelBundleSession(t *testing.T) {
	files := modelFiles(t)
	key := modelKeygen(t)
	tarPath := filepath.Join(t.TempDir(), "pilotnet-2.tar")
	before := time.Now().UTC().Truncate(time.Second)
	out := mustFleet(t, packArgs(files, tarPath, "--tolerance-abs", "0.02", "--valid-for", "240h")...)
	if !strings.Contains(out, "packed pilotnet v2: "+tarPath+" (2 files, ") || !strings.Contains(out, "unsigned") {
		t.Errorf("pack printed:\n%s", out)
	}

	out = mustFleet(t, "model", "inspect", tarPath)
	for _, want := range []string{"name:       pilotnet\n", "roles:      primary, shadow\n", "model:      primary.onnx\n",
		"input:      frame float32 [1 3 66 200]\n", "output:     controls float32 [1 3]\n", "tolerance:  abs 0.02, rel 0\n",
		"signature:  none: unsigned", "files (2):\n", "  primary.onnx\n", "  notes/README.txt\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	var doc struct {
		Packed   bool
		Hash     string
		Manifest bundle.Manifest
	}
	if err := json.Unmarshal([]byte(mustFleet(t, "model", "inspect", "--json", tarPath)), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Manifest
	if !doc.Packed || m.Name != "pilotnet" || m.Version != 2 || len(m.Files) != 2 || m.Model != "primary.onnx" ||
		m.Created.Before(before) || m.Expires.Sub(m.Created) != 240*time.Hour || m.Signature != nil || len(doc.Hash) != 64 {
		t.Errorf("inspect --json: %+v", doc)
	}

	// Unsigned bundles are refused.
	if _, _, err := fleet(t, "model", "verify", "--trusted", key+".pub", tarPath); !errors.Is(err, bundle.ErrUnsigned) {
		t.Errorf("verify unsigned: %v", err)
	}
	out = mustFleet(t, "model", "sign", "--key", key+".key", tarPath)
	pub, _ := bundle.ReadPublicKey(key + ".pub")
	if !strings.Contains(out, "signed pilotnet v2 with model-signing key "+bundle.KeyID(pub)+": "+tarPath) {
		t.Errorf("sign printed:\n%s", out)
	}
	out = mustFleet(t, "model", "verify", "--trusted", key+".pub", "--floor", "pilotnet=1", "--vigil-version", "0.2.0",
		"--contract", filepath.Join(files, "primary.onnx"), tarPath)
	if !strings.HasPrefix(out, "ok: pilotnet v2, signed by model-signing key "+bundle.KeyID(pub)) || strings.Contains(out, "not checked") {
		t.Errorf("verify printed:\n%s", out)
	}
	out = mustFleet(t, "model", "verify", "--trusted", key+".pub", tarPath)
	if !strings.Contains(out, "not checked: the Vigil version") || !strings.Contains(out, "not checked: the contract") {
		t.Errorf("verify without a vehicle's version and contract:\n%s", out)
	}

	// The directory form: what extracting the tar gives.
	dir := filepath.Join(t.TempDir(), "pilotnet-2")
	untar(t, tarPath, dir)
	mustFleet(t, "model", "verify", "--trusted", key+".pub", dir)
	other := modelKeygen(t)
	signed := filepath.Join(t.TempDir(), "resigned.tar")
	mustFleet(t, "model", "sign", "--key", other+".key", "--out", signed, "--valid-for", "1h", dir)
	if _, _, err := fleet(t, "model", "verify", "--trusted", other+".pub", dir); !errors.Is(err, bundle.ErrUnknownKey) {
		t.Errorf("--out left the directory as it was: %v", err)
	}
	out = mustFleet(t, "model", "verify", "--trusted", key+".pub,"+other+".pub", signed)
	if !strings.Contains(out, bundle.KeyID(mustPub(t, other))) {
		t.Errorf("re-signed:\n%s", out)
	}
	mustFleet(t, "model", "sign", "--key", other+".key", dir)
	mustFleet(t, "model", "verify", "--trusted", other+".pub", dir)
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("signing in place left %d entries in the bundle directory", len(entries))
	}
}

func mustPub(t *testing.T, prefix string) ed25519.PublicKey {
	t.Helper()
	pub, err := bundle.ReadPublicKey(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func untar(t *testing.T, tarPath, dir string) {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
