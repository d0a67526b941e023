package bundle

import (
	"errors"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// TestTarFS holds a packed bundle's files to the fs.FS contract, and reads
// back every file as the directory holds it: small files, one with a name
// too long for a plain tar header and one not in ASCII (both in PAX
// records), and an empty one.
func TestTarFS(t *testing.T) {
	f := newFixture(t)
	os.Remove(filepath.Join(f.dir, "primary.onnx"))
	long := strings.Repeat("deep/", 30) + "weights.bin"
	names := []string{ManifestName, "primary.onnx", "notes/README.txt", long, "notes/größe.txt", "empty"}
	for i, p := range names[1:] {
		writeFile(t, filepath.Join(f.dir, p), []byte(strings.Repeat(p, i)))
	}
	files, err := HashFiles(os.DirFS(f.dir))
	if err != nil {
		t.Fatal(err)
	}
	f.resign(t, func(m *Manifest) { m.Files = files })
	tarPath := f.pack(t)
	b, err := Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Verify(f.pol, f.now); err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(b.Files, names...); err != nil {
		t.Fatal(err)
	}
	for _, p := range names {
		got, err := fs.ReadFile(b.Files, p)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(f.dir, p))
		if string(got) != string(want) {
			t.Errorf("%s differs", p)
		}
	}
	for _, p := range []string{"../primary.onnx", "/primary.onnx", "missing", "notes/"} {
		if _, err := b.Files.Open(p); err == nil {
			t.Errorf("opened %q", p)
		}
	}
	if _, err := Open(filepath.Join(f.dir, "missing.tar")); err == nil || !strings.Contains(err.Error(), "missing.tar") {
		t.Errorf("a missing bundle: %v", err)
	}
}

// TestStandardLibraryOnly: vigil-fleet links this package, and the vehicle
// verifies with it before anything heavy is loaded; it imports nothing
// beyond the standard library and internal/keyfile (itself standard
// library only: its own test).
func TestStandardLibraryOnly(t *testing.T) {
	paths, _ := filepath.Glob("*.go")
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") && path != "github.com/vigil-av/vigil/internal/keyfile" {
				t.Errorf("%s imports %s, outside the standard library", p, path)
			}
		}
	}
}

// TestPackRefusals: Pack never ships a file that is not what the manifest
// says, and HashFiles never describes a link.
func TestPackRefusals(t *testing.T) {
	f := newFixture(t)
	var sink strings.Builder
	writeFile(t, filepath.Join(f.dir, "notes/README.txt"), []byte("PilotNet primary, trained on the demo track?"))
	if err := Pack(&sink, f.m, os.DirFS(f.dir)); !errors.Is(err, ErrFileMismatch) || !strings.Contains(err.Error(), "notes/README.txt") {
		t.Errorf("a changed file: %v", err)
	}
	writeFile(t, filepath.Join(f.dir, "notes/README.txt"), []byte("longer than it was when the manifest was made\n"))
	if err := Pack(&sink, f.m, os.DirFS(f.dir)); !errors.Is(err, ErrFileMismatch) || !strings.Contains(err.Error(), "changed size") {
		t.Errorf("a longer file: %v", err)
	}
	os.Remove(filepath.Join(f.dir, "notes/README.txt"))
	if err := Pack(&sink, f.m, os.DirFS(f.dir)); !errors.Is(err, ErrMissingFile) {
		t.Errorf("a missing file: %v", err)
	}
	if err := os.Symlink("../primary.onnx", filepath.Join(f.dir, "notes/link")); err != nil {
		t.Fatal(err)
	}
	if _, err := HashFiles(os.DirFS(f.dir)); !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), "notes/link") {
		t.Errorf("a link: %v", err)
	}
	bad := *f.m
	bad.Version = 0
	if err := Pack(&sink, &bad, os.DirFS(f.dir)); !errors.Is(err, ErrMalformed) {
		t.Errorf("an invalid manifest: %v", err)
	}
}
