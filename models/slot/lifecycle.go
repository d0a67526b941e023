package slot

import (
	"errors"
	"fmt"
)

// Promote makes the role's candidate its active slot (state promoted); the
// active slot becomes the previous one, kept for Rollback, and the old
// previous slot's directory is removed after the switch. A candidate whose
// files are gone or resized is refused.
func (s *Store) Promote(role Role) error {
	return s.change(role, "promote", func(next *Table, rs *RoleSlots) ([]string, error) {
		if rs.Candidate == nil {
			return nil, ErrNoCandidate
		}
		if err := s.checkPresent(rs.Candidate); err != nil {
			return nil, fmt.Errorf("candidate: %w", err)
		}
		var old []string
		if rs.Previous != nil {
			old = append(old, rs.Previous.Dir)
		}
		rs.Previous, rs.Active, rs.Candidate = rs.Active, rs.Candidate, nil
		rs.Active.State = Promoted
		return old, nil
	})
}

// Rollback makes the role's previous slot active again, quarantines the
// version that was active (with reason) and removes its directory after
// the switch. A candidate, if any, stays. The anti-rollback floor is not
// lowered: it guards installs, and the previous slot is already installed.
func (s *Store) Rollback(role Role, reason string) error {
	return s.change(role, "rollback", func(next *Table, rs *RoleSlots) ([]string, error) {
		if rs.Previous == nil {
			return nil, ErrNoPrevious
		}
		if err := s.checkPresent(rs.Previous); err != nil {
			return nil, fmt.Errorf("previous: %w", err)
		}
		var old []string
		if rs.Active != nil {
			next.quarantine(rs.Active.Model, orDefault(reason, "rolled back"))
			old = append(old, rs.Active.Dir)
		}
		rs.Active, rs.Previous = rs.Previous, nil
		return old, nil
	})
}

// Vacate takes the role's active version out of service when there is no
// previous slot to roll back to (the role's first deployment replaced the
// model the daemon was configured with): it quarantines the active version
// with reason and leaves the role without an active slot, so the caller's
// configured (factory) model serves it again, then removes the slot's
// directory after the switch. A candidate, if any, stays; the floor is not
// lowered. A role with a previous slot is refused (ErrHasPrevious: use
// Rollback), and so is one without an active slot (ErrNoActive).
func (s *Store) Vacate(role Role, reason string) error {
	return s.change(role, "vacate", func(next *Table, rs *RoleSlots) ([]string, error) {
		if rs.Active == nil {
			return nil, ErrNoActive
		}
		if rs.Previous != nil {
			return nil, ErrHasPrevious
		}
		next.quarantine(rs.Active.Model, orDefault(reason, "rolled back to the configured model"))
		old := []string{rs.Active.Dir}
		rs.Active = nil
		return old, nil
	})
}

// Commit marks the role's active slot committed and raises its name's
// anti-rollback floor to its version (a floor never goes down). Committing
// a committed slot changes nothing.
func (s *Store) Commit(role Role) error {
	return s.change(role, "commit", func(next *Table, rs *RoleSlots) ([]string, error) {
		if rs.Active == nil {
			return nil, ErrNoActive
		}
		a := rs.Active
		m := a.Model
		if a.State == Committed && next.Floors[m.Name] >= m.Version {
			return nil, errUnchanged
		}
		a.State = Committed
		if next.Floors[m.Name] < m.Version {
			next.Floors[m.Name] = m.Version
		}
		return nil, nil
	})
}

// StartTrial marks the role's candidate as in trial. Marking a candidate
// already in trial changes nothing.
func (s *Store) StartTrial(role Role) error {
	return s.change(role, "trial", func(next *Table, rs *RoleSlots) ([]string, error) {
		if rs.Candidate == nil {
			return nil, ErrNoCandidate
		}
		if rs.Candidate.State == Trial {
			return nil, errUnchanged
		}
		rs.Candidate.State = Trial
		return nil, nil
	})
}

// Discard withdraws the role's candidate (a deployment cancelled or
// replaced) and removes its directory after the switch; the version is
// not quarantined.
func (s *Store) Discard(role Role) error {
	return s.change(role, "discard", func(next *Table, rs *RoleSlots) ([]string, error) {
		if rs.Candidate == nil {
			return nil, ErrNoCandidate
		}
		old := []string{rs.Candidate.Dir}
		rs.Candidate = nil
		return old, nil
	})
}

// Reject discards the role's candidate because it failed (its trial, a
// check before promotion) and quarantines its version with reason.
func (s *Store) Reject(role Role, reason string) error {
	return s.change(role, "reject", func(next *Table, rs *RoleSlots) ([]string, error) {
		if rs.Candidate == nil {
			return nil, ErrNoCandidate
		}
		next.quarantine(rs.Candidate.Model, orDefault(reason, "rejected"))
		old := []string{rs.Candidate.Dir}
		rs.Candidate = nil
		return old, nil
	})
}

// errUnchanged tells change that there is nothing to write.
var errUnchanged = errors.New("unchanged")

// change applies edit to a copy of the table and switches to it; edit
// returns the slot directories the change leaves unnamed, removed after
// the switch.
func (s *Store) change(role Role, op string, edit func(next *Table, rs *RoleSlots) ([]string, error)) error {
	if err := checkRole(role); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.table.clone()
	old, err := edit(&next, next.role(role))
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, role, err)
	}
	if _, err := s.switchTo(next, op, old); err != nil {
		return fmt.Errorf("%s %s: %w", op, role, err)
	}
	return nil
}

// switchTo makes next the table on disk and in memory, then removes the
// directories in old. switched reports whether the change took effect: an
// error with switched true came after the rename (the directory sync, or
// removing an old directory, which Open retries).
func (s *Store) switchTo(next Table, op string, old []string) (switched bool, err error) {
	if err := writeTable(s.dir, next, op); err != nil {
		if errors.Is(err, errNotDurable) {
			// The rename happened: follow it, and keep the old
			// directories, which a power loss could make current again.
			s.table = next
			s.changed()
			return true, err
		}
		return false, err
	}
	s.table = next
	s.changed()
	if err := removeSlotDirs(s.dir, op, old...); err != nil {
		return true, fmt.Errorf("switched, but an old slot directory is left for the next Open: %w", err)
	}
	return true, nil
}

// changed hands the new table to the SetOnChange function; s.mu is held.
func (s *Store) changed() {
	if s.onChange != nil {
		s.onChange(s.table.clone())
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
