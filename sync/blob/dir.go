package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Dir is a Store in a directory: blob <sum> is the file
// <root>/blobs/sha256/<sum[:2]>/<sum>.
type Dir struct {
	root string // <root>/blobs/sha256
}

var _ Store = (*Dir)(nil)

// NewDir opens (creating it if missing) the blob store under root.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("blob store: no directory given")
	}
	dir := filepath.Join(root, "blobs", "sha256")
	if err := mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("blob store %s: %w", root, err)
	}
	return &Dir{root: dir}, nil
}

// Path is the file that holds blob sum (a valid SHA-256: see Sum).
func (d *Dir) Path(sum string) string { return filepath.Join(d.root, sum[:2], sum) }

// Put stores data as sum: written to a hidden temporary file beside its
// name, synced, renamed and the directory synced. A blob already stored
// is not rewritten, but its modification time becomes now: List's mod
// is when a blob was last put, so a prune's grace period spares a chunk
// that an upload in progress shares with a checkpoint just deleted.
func (d *Dir) Put(ctx context.Context, sum string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkSum(sum); err != nil {
		return err
	}
	if got := Sum(data); got != sum {
		return fmt.Errorf("%w: %d bytes hash to %s, not %s", ErrHash, len(data), got, sum)
	}
	path := d.Path(sum)
	if _, err := os.Stat(path); err == nil {
		now := time.Now()
		if err := os.Chtimes(path, now, now); err != nil {
			return fmt.Errorf("blob %s: %w", sum, err)
		}
		return nil
	}
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		return fmt.Errorf("blob %s: %w", sum, err)
	}
	if err := writeAtomic(path, data); err != nil {
		return fmt.Errorf("blob %s: %w", sum, err)
	}
	return nil
}

// Get returns blob sum's bytes.
func (d *Dir) Get(ctx context.Context, sum string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkSum(sum); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.Path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", sum, err)
	}
	return b, nil
}

// Has says whether blob sum is stored.
func (d *Dir) Has(ctx context.Context, sum string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkSum(sum); err != nil {
		return false, err
	}
	_, err := os.Stat(d.Path(sum))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("blob %s: %w", sum, err)
}

// Delete removes blob sum and syncs its directory.
func (d *Dir) Delete(ctx context.Context, sum string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkSum(sum); err != nil {
		return err
	}
	path := d.Path(sum)
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("blob %s: delete: %w", sum, err)
	}
	return nil
}

// List calls fn for every blob, in order of name. Temporary files and
// anything else that is not a blob under its own name are skipped.
func (d *Dir) List(ctx context.Context, fn func(sum string, size int64, mod time.Time) error) error {
	return d.walk(ctx, func(dir string, e fs.DirEntry) error {
		if e.Type().IsRegular() && checkSum(e.Name()) == nil && strings.HasPrefix(e.Name(), filepath.Base(dir)) {
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted since the directory was read
			}
			if err != nil {
				return fmt.Errorf("blob %s: %w", e.Name(), err)
			}
			return fn(e.Name(), info.Size(), info.ModTime())
		}
		return nil
	})
}

// RemoveTemp deletes the temporary files that Puts cut short by a crash
// left, those last written before before (a Put in progress writes one
// too), and returns how many it deleted.
func (d *Dir) RemoveTemp(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := d.walk(ctx, func(dir string, e fs.DirEntry) error {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), tempPrefix) {
			return nil
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(before) {
			return nil
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob store: remove %s: %w", filepath.Join(dir, e.Name()), err)
		}
		n++
		return nil
	})
	return n, err
}

// walk calls fn for every entry of every two-hex-digit directory.
func (d *Dir) walk(ctx context.Context, fn func(dir string, e fs.DirEntry) error) error {
	tops, err := os.ReadDir(d.root)
	if err != nil {
		return fmt.Errorf("blob store %s: %w", d.root, err)
	}
	for _, t := range tops {
		if !t.IsDir() || len(t.Name()) != 2 || !isHex(t.Name()) {
			continue
		}
		dir := filepath.Join(d.root, t.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("blob store %s: %w", dir, err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(dir, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func isHex(s string) bool {
	return !slices.ContainsFunc([]byte(s), func(c byte) bool { return !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') })
}
