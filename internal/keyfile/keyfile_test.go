package keyfile

import (
	"crypto/ed25519"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var (
	command = Kind{Name: "fleet command key", Other: "model-signing key", Instead: "use a command key"}
	model   = Kind{Name: "model-signing key", Other: "fleet command key", Instead: "use a model-signing key"}
)

// TestRoundTripAndKinds: a key written reads back as written, public and
// private; each kind refuses the other's files, a public file given for a
// private key and the reverse, and malformed files, each with its reason.
func TestRoundTripAndKinds(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	for _, k := range []Kind{command, model} {
		if got, err := ParsePublic(MarshalPublic(k, "id", pub), k); err != nil || !got.Equal(pub) {
			t.Errorf("%s public: %v", k.Name, err)
		}
		if got, err := ParsePrivate(MarshalPrivate(k, "id", priv), k); err != nil || !got.Equal(priv) {
			t.Errorf("%s private: %v", k.Name, err)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a model key as a command key", func() error { _, err := ParsePublic(MarshalPublic(model, "id", pub), command); return err }(), "this is a model-signing key; use a command key"},
		{"a command key as a model key", func() error { _, err := ParsePrivate(MarshalPrivate(command, "id", priv), model); return err }(), "this is a fleet command key"},
		{"a private file for a public key", func() error { _, err := ParsePublic(MarshalPrivate(command, "id", priv), command); return err }(), "this is a private key"},
		{"a public file for a private key", func() error { _, err := ParsePrivate(MarshalPublic(command, "id", pub), command); return err }(), "this is a public key"},
		{"two key lines", func() error { _, err := ParsePublic([]byte("AAAA\nBBBB\n"), command); return err }(), "more than one line"},
		{"no key", func() error { _, err := ParsePublic([]byte("# nothing\n"), command); return err }(), "no key in it"},
		{"not base64", func() error { _, err := ParsePublic([]byte("!!!\n"), command); return err }(), "not base64"},
		{"a short key", func() error { _, err := ParsePublic([]byte("AAAA\n"), command); return err }(), "3 bytes"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

// TestReadRefuses: a private key file open to the group is refused with
// the chmod to run; a directory and an oversized file are refused.
func TestReadRefuses(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, []byte("x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(open, true); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a private key open to the group: %v", err)
	}
	if _, err := Read(open, false); err != nil {
		t.Errorf("a public key open to the group: %v", err)
	}
	if _, err := Read(dir, false); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("a directory: %v", err)
	}
	big := filepath.Join(dir, "big.pub")
	if err := os.WriteFile(big, make([]byte, 64<<10+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(big, false); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("an oversized file: %v", err)
	}
}

// TestStandardLibraryOnly: models/bundle, which vigil-fleet links, uses
// this package; it imports only the standard library.
func TestStandardLibraryOnly(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "keyfile.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
			t.Errorf("keyfile.go imports %s, outside the standard library", path)
		}
	}
}
