package blob

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func newDir(t *testing.T) *Dir {
	t.Helper()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func listed(t *testing.T, d *Dir) []string {
	t.Helper()
	var sums []string
	if err := d.List(context.Background(), func(sum string, size int64, _ time.Time) error {
		sums = append(sums, sum)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return sums
}

// TestPutRefusesWrongHash: bytes that do not hash to their name, and
// names that are not a SHA-256 (upper case, short, a path), are refused
// with ErrHash and store nothing.
func TestPutRefusesWrongHash(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	data := []byte("chunk bytes")
	for _, sum := range []string{Sum([]byte("other")), strings.ToUpper(Sum(data)), Sum(data)[:62], "../../../etc/passwd", ""} {
		if err := d.Put(ctx, sum, data); !errors.Is(err, ErrHash) {
			t.Errorf("Put(%q): %v, want ErrHash", sum, err)
		}
	}
	if _, err := d.Get(ctx, "../x"); !errors.Is(err, ErrHash) {
		t.Errorf("Get of a path: %v, want ErrHash", err)
	}
	if got := listed(t, d); len(got) != 0 {
		t.Errorf("refused Puts stored %v", got)
	}
}

// TestPutGetIdempotent: a blob reads back as put, under
// blobs/sha256/<2>/<64>; putting it again does not rewrite the file (the
// same file, its bytes as they were) but makes it young again.
func TestPutGetIdempotent(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a chunk of a checkpoint")
	sum := Sum(data)
	if err := d.Put(ctx, sum, data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "blobs", "sha256", sum[:2], sum)
	if d.Path(sum) != path {
		t.Fatalf("Path %s, want %s", d.Path(sum), path)
	}
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, sum, data); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	after, err := os.Stat(path)
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("second Put replaced the file: %v", err)
	}
	if !after.ModTime().After(old.Add(time.Hour)) {
		t.Errorf("second Put left the blob's time at %v", after.ModTime())
	}
	got, err := d.Get(ctx, sum)
	if err != nil || string(got) != string(data) {
		t.Fatalf("Get: %q %v", got, err)
	}
	if ok, err := d.Has(ctx, sum); !ok || err != nil {
		t.Errorf("Has: %v %v", ok, err)
	}
	var sizes []int64
	var mods []time.Time
	d.List(ctx, func(s string, size int64, mod time.Time) error { //nolint:errcheck // fn never fails
		sizes, mods = append(sizes, size), append(mods, mod)
		return nil
	})
	if len(sizes) != 1 || sizes[0] != int64(len(data)) || !mods[0].Equal(after.ModTime()) {
		t.Errorf("List: sizes %v mods %v", sizes, mods)
	}
	if err := Verify(ctx, d, sum); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// TestNotFound: Get of an absent blob wraps ErrNotFound and names it;
// Has says false; Delete of it is no error, and Delete removes a blob.
func TestNotFound(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	sum := Sum([]byte("never stored"))
	if _, err := d.Get(ctx, sum); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), sum) {
		t.Errorf("Get: %v, want ErrNotFound naming %s", err, sum)
	}
	if ok, err := d.Has(ctx, sum); ok || err != nil {
		t.Errorf("Has: %v %v", ok, err)
	}
	if err := d.Delete(ctx, sum); err != nil {
		t.Errorf("Delete of an absent blob: %v", err)
	}
	data := []byte("stored, then deleted")
	if err := d.Put(ctx, Sum(data), data); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, Sum(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, Sum(data)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
}

// TestCrashLeftovers: what a Put killed before its rename leaves is a
// hidden temporary file beside the blob's name, never a file under a
// blob's name; List skips it (and anything else that is not a blob
// under its own name), and RemoveTemp deletes the old ones only.
func TestCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	data := []byte("the whole blob")
	sum := Sum(data)
	if err := d.Put(ctx, sum, data); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(d.Path(sum))
	// A Put cut short: writeAtomic's temporary file, as named, half written.
	half := Sum([]byte("half"))
	if err := os.MkdirAll(filepath.Dir(d.Path(half)), 0o750); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(filepath.Dir(d.Path(half)), tempPrefix+half+"-*")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("ha") //nolint:errcheck
	f.Close()
	if !strings.HasPrefix(filepath.Base(f.Name()), ".") {
		t.Fatalf("temporary file %s is not hidden", f.Name())
	}
	young, err := os.CreateTemp(dir, tempPrefix+sum+"-*")
	if err != nil {
		t.Fatal(err)
	}
	young.Close()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(f.Name(), old, old) //nolint:errcheck
	// A blob under another prefix's directory, and a stray file.
	other := Sum([]byte("misplaced"))
	os.WriteFile(filepath.Join(dir, other), []byte("misplaced"), 0o600) //nolint:errcheck
	os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o600)      //nolint:errcheck
	if got := listed(t, d); !slices.Equal(got, []string{sum}) {
		t.Errorf("List: %v, want only %s", got, sum)
	}
	if ok, _ := d.Has(ctx, half); ok {
		t.Error("a half-written blob is visible")
	}
	n, err := d.RemoveTemp(ctx, time.Now().Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("RemoveTemp: %d %v, want 1", n, err)
	}
	if _, err := os.Stat(f.Name()); !os.IsNotExist(err) {
		t.Errorf("old temporary file kept: %v", err)
	}
	if _, err := os.Stat(young.Name()); err != nil {
		t.Errorf("a young temporary file (a Put in progress) was removed: %v", err)
	}
	// Put itself leaves no temporary file.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) && filepath.Join(dir, e.Name()) != young.Name() {
			t.Errorf("Put left %s", e.Name())
		}
	}
}

// TestVerifyFindsCorruption: a blob whose file changed no longer hashes to
// its name, and Verify says so (ErrHash, naming the blob).
func TestVerifyFindsCorruption(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	data := []byte("to be flipped")
	sum := Sum(data)
	if err := d.Put(ctx, sum, data); err != nil {
		t.Fatal(err)
	}
	data[0] ^= 1
	if err := os.WriteFile(d.Path(sum), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, d, sum); !errors.Is(err, ErrHash) || !strings.Contains(err.Error(), sum) {
		t.Errorf("Verify: %v, want ErrHash naming the blob", err)
	}
}

// TestCancelled: a cancelled context stops Put and List.
func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := newDir(t)
	if err := d.Put(ctx, Sum(nil), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Put: %v", err)
	}
	if err := d.Put(context.Background(), Sum([]byte("x")), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.List(ctx, func(string, int64, time.Time) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List: %v", err)
	}
}
