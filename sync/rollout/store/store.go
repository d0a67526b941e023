// Package store keeps rollouts in a directory, one JSON file per
// rollout (<id>.json, rollout.Rollout's Encode form), so that every
// vigil-fleet invocation sees the same rollouts: the one that runs a
// rollout and those that show, pause or abort it.
//
// A file is replaced whole: written beside it under a temporary name,
// fsynced, renamed over it, and the directory fsynced, so that a reader
// (and a crash) sees the old rollout or the new, never a mix. Every
// change is a read-modify-write under an exclusive flock on <id>.lock
// (Update), held for that one change only: the runner's steps and an
// operator's pause or abort from another process are applied one after
// the other, each to the latest state. The process that runs a rollout
// also holds <id>.run (Claim) for as long as it runs, so that a second
// runner of the same rollout is refused; the kernel releases both locks
// when a process dies, so a rollout whose runner was killed can be
// resumed at once.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("no such rollout")
	ErrExists   = errors.New("a rollout of that id exists")
	ErrClaimed  = errors.New("the rollout is being run by another process")
)

// Dir is a directory of rollouts.
type Dir struct{ root string }

// Create makes the directory root (and its parents) if needed, and opens
// it.
func Create(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("rollouts directory: %w", err)
	}
	return Open(root)
}

// Open opens an existing directory of rollouts.
func Open(root string) (*Dir, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("rollouts directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("rollouts directory %s: not a directory", root)
	}
	return &Dir{root: root}, nil
}

// Root is the directory.
func (d *Dir) Root() string { return d.root }

// Path is the file that holds rollout id.
func (d *Dir) Path(id string) string { return filepath.Join(d.root, id+".json") }

func checkID(id string) error {
	if !deploywire.ValidRolloutID(id) {
		return fmt.Errorf("rollout id %q: want 1 to 64 of letters, digits, '.', '_', '-', not starting with '.'", id)
	}
	return nil
}

// Add stores a new rollout; an existing rollout of its id is ErrExists,
// and left as it is.
func (d *Dir) Add(r *rollout.Rollout) error {
	id := r.Spec.ID
	if err := checkID(id); err != nil {
		return err
	}
	unlock, err := d.lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(d.Path(id)); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, d.Path(id))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rollout %s: %w", id, err)
	}
	return d.write(r)
}

// Load reads rollout id; a missing one is ErrNotFound, a damaged one
// rollout.ErrCorrupt, each with the file's name.
func (d *Dir) Load(id string) (*rollout.Rollout, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(d.Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s in %s", ErrNotFound, id, d.root)
	}
	if err != nil {
		return nil, fmt.Errorf("rollout %s: %w", id, err)
	}
	r, err := rollout.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Path(id), err)
	}
	if r.Spec.ID != id {
		return nil, fmt.Errorf("%s: %w: it holds rollout %q", d.Path(id), rollout.ErrCorrupt, r.Spec.ID)
	}
	return r, nil
}

// List reads every rollout in the directory, oldest first. A file it
// cannot read is left out, and named in the error returned beside the
// others.
func (d *Dir) List() ([]*rollout.Rollout, error) {
	ents, err := os.ReadDir(d.root)
	if err != nil {
		return nil, fmt.Errorf("rollouts directory: %w", err)
	}
	var out []*rollout.Rollout
	var errs []error
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || checkID(id) != nil {
			continue
		}
		r, err := d.Load(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Spec.ID < out[j].Spec.ID
	})
	return out, errors.Join(errs...)
}

// ErrUnchanged, returned by Update's fn, says there is nothing to write;
// Update then returns the rollout and no error.
var ErrUnchanged = errors.New("rollout unchanged")

// Update applies fn to the latest state of rollout id and stores the
// result, under the rollout's lock. When fn returns an error nothing is
// written, and Update returns it (but ErrUnchanged, which it does not).
func (d *Dir) Update(id string, fn func(*rollout.Rollout) error) (*rollout.Rollout, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	// A rollout that is not there gets no lock file either.
	if _, err := os.Lstat(d.Path(id)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s in %s", ErrNotFound, id, d.root)
	}
	unlock, err := d.lock(id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := d.Load(id)
	if err != nil {
		return nil, err
	}
	if err := fn(r); errors.Is(err, ErrUnchanged) {
		return r, nil
	} else if err != nil {
		return nil, err
	}
	if err := d.write(r); err != nil {
		return nil, err
	}
	return r, nil
}

// syncFile is fsync; a test replaces it to fail a write.
var syncFile = (*os.File).Sync

// write replaces r's file whole: temporary file, fsync, rename, fsync of
// the directory. On an error the old file is left as it was.
func (d *Dir) write(r *rollout.Rollout) (err error) {
	raw, err := r.Encode()
	if err != nil {
		return err
	}
	path := d.Path(r.Spec.ID)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", r.Spec.ID, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("rollout %s: write %s: %w", r.Spec.ID, path, err)
		}
	}()
	if _, err = f.Write(raw); err != nil {
		return err
	}
	if err = syncFile(f); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(d.root)
	if err != nil {
		return err
	}
	defer dir.Close()
	return syncFile(dir)
}

// lock takes the exclusive lock on <id>.lock, waiting for it.
func (d *Dir) lock(id string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(d.root, id+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("rollout %s: lock: %w", id, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("rollout %s: lock %s: %w", id, f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// Claim is a runner's hold on a rollout.
type Claim struct{ f *os.File }

// Claim takes <id>.run for the calling process, without waiting: a
// rollout some process runs already is ErrClaimed. Release it when the
// run ends.
func (d *Dir) Claim(id string) (*Claim, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	path := filepath.Join(d.root, id+".run")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("rollout %s: claim: %w", id, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s is locked)", ErrClaimed, path)
		}
		return nil, fmt.Errorf("rollout %s: claim %s: %w", id, path, err)
	}
	return &Claim{f: f}, nil
}

// Release gives the claim up.
func (c *Claim) Release() error { return c.f.Close() }

// Running reports whether some process holds rollout id's claim.
func (d *Dir) Running(id string) (bool, error) {
	if _, err := os.Lstat(filepath.Join(d.root, id+".run")); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	c, err := d.Claim(id)
	if errors.Is(err, ErrClaimed) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return false, c.Release()
}
