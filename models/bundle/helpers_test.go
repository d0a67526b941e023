package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-av/vigil/models/demo"
)

// t0 is when the fixtures' manifests were made.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// demoContract is the contract of Vigil's demo models.
var demoContract = Contract{
	Inputs:  []Tensor{{Name: demo.InputName, Type: "float32", Shape: []int64{1, 3, 66, 200}}},
	Outputs: []Tensor{{Name: demo.OutputName, Type: "float32", Shape: []int64{1, 3}}},
}

// fixture is a signed bundle directory holding the real demo primary model
// and a second file in a sub-directory, with the key that signed it and a
// policy it passes.
type fixture struct {
	dir  string
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	m    *Manifest
	pol  Policy
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: filepath.Join(t.TempDir(), "bundle"), now: t0.Add(time.Hour)}
	model, err := demo.Generate(demo.RolePrimary)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.dir, "primary.onnx"), model)
	writeFile(t, filepath.Join(f.dir, "notes", "README.txt"), []byte("PilotNet primary, trained on the demo track\n"))
	files, err := HashFiles(os.DirFS(f.dir))
	if err != nil {
		t.Fatal(err)
	}
	f.pub, f.priv, _, err = GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.m = &Manifest{
		Format: FormatVersion, Name: "pilotnet", Version: 2,
		Roles: []Role{RolePrimary, RoleShadow}, Model: "primary.onnx",
		Contract: demoContract, Files: files, MinVigil: "0.1.0",
		Providers: []string{"cpu"}, Tolerance: &Tolerance{Abs: 0.02, Rel: 0.01},
		Created: t0, Expires: t0.Add(30 * 24 * time.Hour),
	}
	f.pol = Policy{
		Trusted:      []ed25519.PublicKey{f.pub},
		VigilVersion: "0.1.0",
		Providers:    []string{"cpu", "cuda"},
		Contracts:    map[Role]Contract{RolePrimary: demoContract, RoleShadow: demoContract, RoleDegraded: demoContract},
		Floors:       map[string]uint64{"pilotnet": 1},
	}
	f.resign(t, nil)
	return f
}

// resign applies edit to the manifest (if not nil), signs it with the
// fixture's key and writes it to the bundle directory.
func (f *fixture) resign(t *testing.T, edit func(m *Manifest)) {
	t.Helper()
	if edit != nil {
		edit(f.m)
	}
	if err := Sign(f.m, f.priv); err != nil {
		t.Fatal(err)
	}
	f.writeManifest(t)
}

func (f *fixture) writeManifest(t *testing.T) {
	t.Helper()
	b, err := Encode(f.m)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.dir, ManifestName), b)
}

// pack writes the fixture's bundle as a tar and returns its path.
func (f *fixture) pack(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Pack(&buf, f.m, os.DirFS(f.dir)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pilotnet-2.tar")
	writeFile(t, p, buf.Bytes())
	return p
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot records everything under root (a file or a directory): each
// entry's path, mode, size, modification time and contents' hash.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sum := ""
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			sum = hex.EncodeToString(h[:])
		}
		out[p] = info.Mode().String() + " " + info.ModTime().String() + " " + sum
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("entries changed: %d before, %d after", len(before), len(after))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("%s changed: %q -> %q", p, b, after[p])
		}
	}
}

// verifyPath opens and verifies the bundle at path as a vehicle would.
func verifyPath(path string, p Policy, now time.Time) error {
	b, err := Open(path)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Verify(p, now)
}

func wantErr(t *testing.T, err, want error, mention string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if mention != "" && !bytes.Contains([]byte(err.Error()), []byte(mention)) {
		t.Errorf("error %q does not mention %q", err, mention)
	}
}
