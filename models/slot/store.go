package slot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
)

// Store is a slot store rooted at a directory. Its methods may be called
// from several goroutines; one process at a time may own the directory.
type Store struct {
	dir string

	mu       sync.Mutex
	table    Table
	onChange func(Table) // SetOnChange
}

// Open opens the slot store in dir, creating dir and an empty table if
// there is none, and recovers from a crash: it removes a leftover
// slots.json.tmp and every entry of a role directory that the table does
// not name (a slot half written, or an old one not yet removed). It then
// checks that every file of every role's active slot is present with its
// recorded size, and fails naming the first that is not.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open model slots: no directory given")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open model slots: %w", err)
	}
	t, err := readTable(dir)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(dir, TableName+".tmp")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open model slots: remove the half-written table: %w", err)
	}
	if t == nil {
		// No table yet: write an empty one before any slot directory
		// exists, so that slot directories without a table can only
		// mean a lost table, never a first install cut short.
		if err := refuseOrphans(dir); err != nil {
			return nil, err
		}
		empty := NewTable()
		if err := writeTable(dir, empty, "open"); err != nil {
			return nil, fmt.Errorf("open model slots: %w", err)
		}
		t = &empty
	}
	s := &Store{dir: dir, table: *t}
	if err := s.removeUnreferenced(); err != nil {
		return nil, err
	}
	for _, r := range Roles {
		if rs := t.Roles[r]; rs != nil && rs.Active != nil {
			if err := s.checkPresent(rs.Active); err != nil {
				return nil, fmt.Errorf("open model slots: %s active slot: %w", r, err)
			}
		}
	}
	return s, nil
}

// readTable reads slots.json; nil when there is none.
func readTable(dir string) (*Table, error) {
	name := filepath.Join(dir, TableName)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open model slots: %w", err)
	}
	t, err := DecodeTable(b)
	if err != nil {
		return nil, fmt.Errorf("open model slots: %s: %w", name, err)
	}
	return &t, nil
}

// refuseOrphans fails if a role directory holds anything while there is
// no table to say what it is.
func refuseOrphans(dir string) error {
	for _, r := range Roles {
		ents, err := os.ReadDir(filepath.Join(dir, string(r)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open model slots: %w", err)
		}
		if len(ents) > 0 {
			return fmt.Errorf("open model slots: %w: %s is missing but %s holds %s: restore the table, or remove %s to start with no models",
				ErrBadTable, filepath.Join(dir, TableName), filepath.Join(dir, string(r)), ents[0].Name(), filepath.Join(dir, string(r)))
		}
	}
	return nil
}

// removeUnreferenced removes what a role directory holds beyond the slots
// the table names.
func (s *Store) removeUnreferenced() error {
	named := map[string]bool{}
	for _, rs := range s.table.Roles {
		for _, sl := range []*Slot{rs.Active, rs.Candidate, rs.Previous} {
			if sl != nil {
				named[sl.Dir] = true
			}
		}
	}
	for _, r := range Roles {
		rdir := filepath.Join(s.dir, string(r))
		ents, err := os.ReadDir(rdir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open model slots: %w", err)
		}
		for _, e := range ents {
			if named[string(r)+"/"+e.Name()] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(rdir, e.Name())); err != nil {
				return fmt.Errorf("open model slots: remove unfinished slot: %w", err)
			}
		}
	}
	return nil
}

// checkPresent stats every file of a slot against its recorded size.
func (s *Store) checkPresent(sl *Slot) error {
	for _, f := range sl.Model.Files {
		p := s.abs(sl, f.Path)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s (%s v%d): reinstall the version or roll back", ErrMissingFile, p, sl.Model.Name, sl.Model.Version)
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || fi.Size() != f.Size {
			return fmt.Errorf("%w: %s (%s v%d) is %d bytes, the slot table records %d: reinstall the version or roll back",
				ErrSizeMismatch, p, sl.Model.Name, sl.Model.Version, fi.Size(), f.Size)
		}
	}
	return nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Table returns a copy of the current slot table.
func (s *Store) Table() Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.clone()
}

// Slots returns a copy of a role's slots.
func (s *Store) Slots(role Role) (RoleSlots, error) {
	if err := checkRole(role); err != nil {
		return RoleSlots{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.table.Roles[role]
	if rs == nil {
		return RoleSlots{}, nil
	}
	return RoleSlots{Active: rs.Active.clone(), Candidate: rs.Candidate.clone(), Previous: rs.Previous.clone()}, nil
}

// ActivePath returns the path on disk of a file of the role's active slot,
// for the daemon to load.
func (s *Store) ActivePath(role Role, file string) (string, error) {
	return s.path(role, file, "active", ErrNoActive, func(rs *RoleSlots) *Slot { return rs.Active })
}

// CandidatePath returns the path on disk of a file of the role's candidate
// slot, for a trial to load.
func (s *Store) CandidatePath(role Role, file string) (string, error) {
	return s.path(role, file, "candidate", ErrNoCandidate, func(rs *RoleSlots) *Slot { return rs.Candidate })
}

func (s *Store) path(role Role, file, which string, none error, pick func(*RoleSlots) *Slot) (string, error) {
	if err := checkRole(role); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sl *Slot
	if rs := s.table.Roles[role]; rs != nil {
		sl = pick(rs)
	}
	if sl == nil {
		return "", fmt.Errorf("%s %s: %w", role, which, none)
	}
	file = path.Clean(file)
	for _, f := range sl.Model.Files {
		if f.Path == file {
			return s.abs(sl, f.Path), nil
		}
	}
	return "", fmt.Errorf("%s %s slot (%s v%d): %q: %w", role, which, sl.Model.Name, sl.Model.Version, file, ErrNotInSlot)
}

// Verify reads every file of the role's active slot and checks it against
// its recorded size and SHA-256 (Open only checks sizes). It holds the
// store's lock while it reads, so no change runs meanwhile.
func (s *Store) Verify(role Role) error {
	if err := checkRole(role); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sl *Slot
	if rs := s.table.Roles[role]; rs != nil {
		sl = rs.Active
	}
	if sl == nil {
		return fmt.Errorf("verify %s: %w", role, ErrNoActive)
	}
	for _, f := range sl.Model.Files {
		if err := verifyFile(s.abs(sl, f.Path), f); err != nil {
			return fmt.Errorf("verify %s active slot (%s v%d): %w", role, sl.Model.Name, sl.Model.Version, err)
		}
	}
	return nil
}

func verifyFile(p string, f File) error {
	r, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrMissingFile, p)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if n != f.Size {
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrSizeMismatch, p, n, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, want %s", ErrHashMismatch, p, got, f.SHA256)
	}
	return nil
}

func (s *Store) abs(sl *Slot, file string) string {
	return filepath.Join(s.dir, filepath.FromSlash(sl.Dir), filepath.FromSlash(file))
}
