package manifest

import (
	"errors"
	"fmt"
	"slices"
)

// ErrChain is wrapped by every error about a chain of checkpoints: gaps,
// mixed vehicles or stores, missing or corrupt chunks, wrong counts.
var ErrChain = errors.New("checkpoint chain refused")

// Chain returns the checkpoints of ms (one store's, or several) that a
// restore of the checkpoint at loads, full first: at and, back to a full,
// the bases it builds on. at empty means the newest of ms. It refuses
// checkpoints of more than one vehicle, a vehicle other than vehicle (if
// set), a chain with a gap, a differential on anything but a full, a
// base of another store and a since that is not its base's snapshot_ts.
// where names the checkpoints' place in errors.
func Chain(ms []*Manifest, at, vehicle, where string) ([]*Manifest, error) {
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: no checkpoints in %s", ErrChain, where)
	}
	ms = slices.Clone(ms)
	Sort(ms)
	byID := map[string]*Manifest{}
	for _, m := range ms {
		if m.Vehicle != ms[0].Vehicle {
			return nil, fmt.Errorf("%w: checkpoint %s is of vehicle %q, %s of %q", ErrChain, m.ID, m.Vehicle, ms[0].ID, ms[0].Vehicle)
		}
		if o := byID[m.ID]; o != nil {
			return nil, fmt.Errorf("%w: two checkpoints %s in %s (stores %s and %s)", ErrChain, m.ID, where, o.StoreID, m.StoreID)
		}
		byID[m.ID] = m
	}
	if vehicle != "" && ms[0].Vehicle != vehicle {
		return nil, fmt.Errorf("%w: the checkpoints in %s are of vehicle %q, not %q", ErrChain, where, ms[0].Vehicle, vehicle)
	}
	target := ms[len(ms)-1]
	if at != "" {
		if target = byID[at]; target == nil {
			return nil, fmt.Errorf("%w: no checkpoint %s in %s", ErrChain, at, where)
		}
	}
	chain := []*Manifest{target}
	for m := target; m.Kind != Full; {
		b := byID[m.Base]
		switch {
		case b == nil:
			return nil, fmt.Errorf("%w: checkpoint %s builds on %s, which is missing: the chain has a gap", ErrChain, m.ID, m.Base)
		case m.Kind == Differential && b.Kind != Full:
			return nil, fmt.Errorf("%w: differential %s builds on %s, not a full", ErrChain, m.ID, b.ID)
		case b.StoreID != m.StoreID:
			return nil, fmt.Errorf("%w: checkpoint %s (store %s) builds on %s of store %s", ErrChain, m.ID, m.StoreID, b.ID, b.StoreID)
		case b.Seq >= m.Seq:
			return nil, fmt.Errorf("%w: checkpoint %s builds on a later one, %s", ErrChain, m.ID, b.ID)
		case m.Since != b.SnapshotTS:
			return nil, fmt.Errorf("%w: checkpoint %s starts at version %d, its base %s ends at %d", ErrChain, m.ID, m.Since, b.ID, b.SnapshotTS)
		}
		chain = append(chain, b)
		m = b
	}
	slices.Reverse(chain)
	return chain, nil
}

// Needed returns the ids of the checkpoints that a restore of any of keep
// loads: keep and every base they build on, transitively. Retention
// deletes nothing it returns.
func Needed(ms []*Manifest, keep []string) map[string]bool {
	byID := map[string]*Manifest{}
	for _, m := range ms {
		byID[m.ID] = m
	}
	need := map[string]bool{}
	for _, id := range keep {
		for m := byID[id]; m != nil && !need[m.ID]; m = byID[m.Base] {
			need[m.ID] = true
		}
	}
	return need
}
