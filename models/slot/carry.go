package slot

import (
	"fmt"
	"maps"
	"slices"
)

// SetOnChange registers f, called with a copy of the table after every
// change that took effect (and never for a refused one), so the caller can
// keep a copy elsewhere, such as in the state a checkpoint carries. f runs
// with the store's lock held: it must not call the store. nil removes it.
func (s *Store) SetOnChange(f func(Table)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = f
}

// Adopt merges what a carried table (a copy restored from a checkpoint of
// another unit, or an older copy of this one) knows that guards installs:
// each name's anti-rollback floor is raised to the carried one where that
// is higher, and every carried quarantine entry this table lacks is added.
// It never lowers a floor, lifts a quarantine or touches a role's slots,
// whose files are this unit's own. It reports whether the table changed;
// a carried table that does not validate is refused (ErrBadTable) and
// changes nothing.
func (s *Store) Adopt(carried Table) (changed bool, err error) {
	if err := carried.Validate(); err != nil {
		return false, fmt.Errorf("adopt a carried slot table: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.table.clone()
	for _, name := range slices.Sorted(maps.Keys(carried.Floors)) {
		if f := carried.Floors[name]; f > next.Floors[name] {
			next.Floors[name] = f
			changed = true
		}
	}
	for _, q := range carried.Quarantine {
		if next.quarantined(q.Name, q.Version, q.Hash) < 0 {
			next.Quarantine = append(next.Quarantine, q)
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	if switched, err := s.switchTo(next, "adopt", nil); err != nil {
		return switched, fmt.Errorf("adopt a carried slot table: %w", err)
	}
	return true, nil
}
