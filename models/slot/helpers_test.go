package slot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// modelSize is the size of a test version's model file: large enough that
// a kill halfway through copying it leaves a partial file.
const modelSize = 48 << 10

// testFiles returns the files of version n of a test model: a model file
// of seeded random bytes and a small contract in a subdirectory.
func testFiles(name string, n uint64) map[string][]byte {
	r := rand.New(rand.NewPCG(n, uint64(len(name))))
	model := make([]byte, modelSize+int(n))
	for i := range model {
		model[i] = byte(r.Uint32())
	}
	return map[string][]byte{
		"model.onnx":         model,
		"meta/contract.json": fmt.Appendf(nil, `{"name":%q,"version":%d}`, name, n),
	}
}

// testVersion returns version n of a test model and a source holding its
// files.
func testVersion(name string, n uint64) (Version, fstest.MapFS) {
	files := testFiles(name, n)
	src := fstest.MapFS{}
	v := Version{Name: name, Version: n, Hash: hexSum(fmt.Appendf(nil, "bundle %s %d", name, n))}
	for _, p := range []string{"model.onnx", "meta/contract.json"} {
		src[p] = &fstest.MapFile{Data: files[p], Mode: 0o644}
		v.Files = append(v.Files, File{Path: p, SHA256: hexSum(files[p]), Size: int64(len(files[p]))})
	}
	return v, src
}

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func install(t *testing.T, s *Store, role Role, name string, n uint64) Version {
	t.Helper()
	v, src := testVersion(name, n)
	if err := s.Install(role, v, src, InstallOptions{}); err != nil {
		t.Fatalf("Install %s %s v%d: %v", role, name, n, err)
	}
	return v
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// populate gives a store the state most tests start from:
//
//	primary:  active pilot v2 (promoted), previous pilot v1 (committed),
//	          candidate pilot v3 (staged); floor pilot=1
//	shadow:   active shadow v1 (committed)
//	degraded: active cpu v1 (promoted)
func populate(t *testing.T, s *Store) {
	t.Helper()
	install(t, s, Primary, "pilot", 1)
	must(t, s.Promote(Primary))
	must(t, s.Commit(Primary))
	install(t, s, Primary, "pilot", 2)
	must(t, s.Promote(Primary))
	install(t, s, Primary, "pilot", 3)
	install(t, s, Shadow, "shadow", 1)
	must(t, s.Promote(Shadow))
	must(t, s.Commit(Shadow))
	install(t, s, Degraded, "cpu", 1)
	must(t, s.Promote(Degraded))
}

// snapshot describes everything under dir: each directory, and each file
// with its SHA-256. Two equal snapshots mean nothing on disk changed.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			lines = append(lines, rel+"/")
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines = append(lines, rel+" "+hexSum(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// encoded is a table's encoding, for comparisons.
func encoded(t *testing.T, tb Table) string {
	t.Helper()
	b, err := tb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkActiveFiles asserts that every file of the role's active slot, read
// through ActivePath, is the test model's own bytes for that version and
// has the SHA-256 the table records.
func checkActiveFiles(t *testing.T, s *Store, role Role) {
	t.Helper()
	rs, err := s.Slots(role)
	if err != nil || rs.Active == nil {
		t.Fatalf("%s: no active slot (%v)", role, err)
	}
	want := testFiles(rs.Active.Model.Name, rs.Active.Model.Version)
	for _, f := range rs.Active.Model.Files {
		p, err := s.ActivePath(role, f.Path)
		if err != nil {
			t.Fatalf("%s: ActivePath(%s): %v", role, f.Path, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		if got := hexSum(b); got != f.SHA256 || got != hexSum(want[f.Path]) {
			t.Fatalf("%s: %s has SHA-256 %s, the table records %s", role, p, got, f.SHA256)
		}
	}
}

// fullDisk is a file on a file system with left bytes free, shared by
// every file made through it. It holds the *os.File in a named field, so
// that io.Copy cannot go around Write through the file's ReadFrom.
type fullDisk struct {
	f    *os.File
	left *int64
}

func (d fullDisk) Write(p []byte) (int, error) {
	if int64(len(p)) > *d.left {
		n, _ := d.f.Write(p[:*d.left])
		*d.left = 0
		return n, &os.PathError{Op: "write", Path: d.f.Name(), Err: syscall.ENOSPC}
	}
	*d.left -= int64(len(p))
	return d.f.Write(p)
}

func (d fullDisk) Sync() error  { return d.f.Sync() }
func (d fullDisk) Close() error { return d.f.Close() }

// fillDiskAfter makes the disk full once left more bytes are written, until
// the test ends.
func fillDiskAfter(t *testing.T, left int64) {
	orig := create
	t.Cleanup(func() { create = orig })
	create = func(name string) (syncFile, error) {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, err
		}
		return fullDisk{f, &left}, nil
	}
}
