package slot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// InstallOptions are the overrides a signed command may ask for.
type InstallOptions struct {
	// ForceBelowFloor installs a version at or below its name's
	// anti-rollback floor.
	ForceBelowFloor bool
	// ForceQuarantined installs a quarantined version and lifts its
	// quarantine entry.
	ForceQuarantined bool
}

// Install copies a version's files from src (a verified bundle's files;
// os.DirFS for a directory) into a fresh slot directory, checking each
// file's size and SHA-256 as it copies, fsyncs them, and records the slot
// as the role's candidate (state staged) by switching the table. A
// candidate the role already had is replaced and its directory removed.
// Files in src that v does not list are not copied.
//
// Install refuses a bad role or version, a version at or below its name's
// floor and a quarantined version (unless opts forces them); a file
// missing from src, of another size or SHA-256, or a failed write (a full
// disk) removes the new directory and leaves the table as it was.
func (s *Store) Install(role Role, v Version, src fs.FS, opts InstallOptions) error {
	if err := checkRole(role); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := checkVersion(v); err != nil {
		return fmt.Errorf("install %s: %w", role, err)
	}
	v.Files = slices.Clone(v.Files)
	s.mu.Lock()
	defer s.mu.Unlock()
	what := fmt.Sprintf("install %s %s v%d", role, v.Name, v.Version)
	if floor := s.table.Floors[v.Name]; v.Version <= floor && !opts.ForceBelowFloor {
		return fmt.Errorf("%s: %w: %s has committed v%d; install a newer version, or force it by a signed command",
			what, ErrBelowFloor, v.Name, floor)
	}
	q := s.table.quarantined(v.Name, v.Version, v.Hash)
	if q >= 0 && !opts.ForceQuarantined {
		return fmt.Errorf("%s (bundle %s): %w (%s); install another version, or force it by a signed command",
			what, v.Hash, ErrQuarantined, s.table.Quarantine[q].Reason)
	}

	next := s.table.clone()
	rel := slotDir(role, next.NextSlot)
	if err := s.writeSlot(rel, v, src); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	rs := next.role(role)
	var old []string
	if rs.Candidate != nil {
		old = append(old, rs.Candidate.Dir)
	}
	rs.Candidate = &Slot{Dir: rel, Model: v, State: Staged}
	next.NextSlot++
	if q >= 0 {
		next.Quarantine = slices.Delete(next.Quarantine, q, q+1)
	}
	if switched, err := s.switchTo(next, "install", old); err != nil {
		if !switched {
			os.RemoveAll(filepath.Join(s.dir, filepath.FromSlash(rel)))
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// writeSlot writes and fsyncs a version's files into the slot directory
// rel, which no table names. On error it removes the directory.
func (s *Store) writeSlot(rel string, v Version, src fs.FS) (err error) {
	abs := filepath.Join(s.dir, filepath.FromSlash(rel))
	roleDir := filepath.Dir(abs)
	if err := s.ensureRoleDir(roleDir); err != nil {
		return err
	}
	// A directory of this number can only be left from an install that
	// failed without cleaning up: the table names none at or above
	// NextSlot.
	if err := os.RemoveAll(abs); err != nil {
		return fmt.Errorf("clear unfinished slot %s: %w", abs, err)
	}
	if err := os.Mkdir(abs, 0o755); err != nil {
		return fmt.Errorf("create slot %s: %w", abs, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(abs)
		}
	}()
	dirs := []string{abs}
	var open []syncFile
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	for i, f := range v.Files {
		if d := path.Dir(f.Path); d != "." {
			made, err := mkdirs(abs, d)
			if err != nil {
				return err
			}
			dirs = append(dirs, made...)
		}
		w, err := copyFile(src, filepath.Join(abs, filepath.FromSlash(f.Path)), f, i == 0)
		if w != nil {
			open = append(open, w)
		}
		if err != nil {
			return err
		}
	}
	step("install.copied")
	for len(open) > 0 {
		if err := open[0].Sync(); err != nil {
			return fmt.Errorf("sync slot file in %s: %w", abs, err)
		}
		err := open[0].Close()
		open = open[1:]
		if err != nil {
			return fmt.Errorf("close slot file in %s: %w", abs, err)
		}
	}
	// Deepest first, so each directory's entry in its parent is synced
	// after the directory itself; then the role directory's entry for
	// the slot.
	slices.SortFunc(dirs, func(a, b string) int {
		return strings.Count(b, string(filepath.Separator)) - strings.Count(a, string(filepath.Separator))
	})
	for _, d := range append(dirs, roleDir) {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	step("install.synced")
	return nil
}

// ensureRoleDir creates a role's directory, syncing the store's directory
// when it is new.
func (s *Store) ensureRoleDir(roleDir string) error {
	if _, err := os.Stat(roleDir); err == nil {
		return nil
	}
	if err := os.Mkdir(roleDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create role directory: %w", err)
	}
	return syncDir(s.dir)
}

// mkdirs creates the slash-separated directory rel under base, returning
// the directories it made.
func mkdirs(base, rel string) ([]string, error) {
	var made []string
	cur := base
	for _, part := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, 0o755)
		if err == nil {
			made = append(made, cur)
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return made, fmt.Errorf("create slot directory: %w", err)
		}
	}
	return made, nil
}

// copyFile copies one listed file from src to dst through create, checking
// its size and SHA-256. The file is returned open and unsynced, so that
// every file of the slot is written before any is synced. midHook calls
// the install.mid-copy step halfway through.
func copyFile(src fs.FS, dst string, f File, midHook bool) (syncFile, error) {
	r, err := src.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is not in the source", ErrMissingFile, f.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("open source %s: %w", f.Path, err)
	}
	defer r.Close()
	w, err := create(dst)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", dst, err)
	}
	h := sha256.New()
	in := io.TeeReader(r, h)
	half := f.Size / 2
	n, err := io.CopyN(w, in, half)
	if err == nil {
		if midHook {
			step("install.mid-copy")
		}
		var m int64
		m, err = io.CopyN(w, in, f.Size-half)
		n += m
	}
	if err == io.EOF {
		return w, fmt.Errorf("%w: %s: the source has %d bytes, the version lists %d", ErrSizeMismatch, f.Path, n, f.Size)
	}
	if err != nil {
		return w, fmt.Errorf("copy %s to %s: %w", f.Path, dst, err)
	}
	if extra, _ := io.ReadFull(r, make([]byte, 1)); extra > 0 {
		return w, fmt.Errorf("%w: %s: the source is longer than the %d bytes the version lists", ErrSizeMismatch, f.Path, f.Size)
	}
	if got := sum(h); got != f.SHA256 {
		return w, fmt.Errorf("%w: %s has SHA-256 %s, the version lists %s: the source is not this version's file", ErrHashMismatch, f.Path, got, f.SHA256)
	}
	return w, nil
}

func sum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
