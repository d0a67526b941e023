package agent

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/storage"
)

// slotTableKey is the store's state key holding a copy of the slot table
// (models/slot), kept after every change so that checkpoints carry the
// anti-rollback floors and the quarantine to a replacement unit.
const slotTableKey = "models.slots"

// carrySlotTable is the start step that ties the slot table to the
// store, once both are open: openSlots runs beside the store's opening
// (the models it names are the unit's own, which adopting never changes).
// A table that cannot be tied is logged; the daemon serves on.
func (d *Daemon) carrySlotTable(context.Context) error {
	if d.slots == nil {
		return nil
	}
	if err := d.carrySlots(d.slots); err != nil {
		d.log.Error("slot table not tied to the store: checkpoints will not carry it", zap.Error(err))
	}
	return nil
}

// carrySlots ties the slot table to the store: a copy the store already
// holds (this unit's own from its last run, or a dead unit's restored
// from a checkpoint) is adopted first, raising floors and adding
// quarantined versions, never lowering or lifting one; from then on every
// change of the table is copied into the store. The model files are not
// carried: a role the copy names with an active version this unit lacks
// is logged, to be deployed again. Without storage there is nothing to
// keep.
func (d *Daemon) carrySlots(st *slot.Store) error {
	if d.tel == nil {
		return nil
	}
	store := d.tel.store
	raw, err := store.GetState(slotTableKey)
	switch {
	case errors.Is(err, storage.ErrNoState):
	case err != nil:
		return fmt.Errorf("the kept slot table: %w", err)
	default:
		d.adoptSlots(st, raw)
	}
	keep := func(t slot.Table) {
		b, err := t.Encode()
		if err == nil {
			err = store.PutState(slotTableKey, b)
		}
		if err != nil {
			d.log.Error("slot table changed but not kept in the store (checkpoints carry the last kept)", zap.Error(err))
		}
	}
	st.SetOnChange(keep)
	keep(st.Table())
	return nil
}

// adoptSlots merges a kept slot table into the unit's own.
func (d *Daemon) adoptSlots(st *slot.Store, raw []byte) {
	kept, err := slot.DecodeTable(raw)
	if err == nil {
		var changed bool
		changed, err = st.Adopt(kept)
		if changed {
			d.log.Info("slot table: floors and quarantine adopted from the copy in the store", zap.Any("floors", st.Table().Floors),
				zap.Int("quarantined", len(st.Table().Quarantine)))
		}
	}
	if err != nil {
		d.log.Error("the slot table kept in the store was not adopted", zap.Error(err))
		return
	}
	own := st.Table()
	for _, r := range slot.Roles {
		k := kept.Roles[r]
		if k == nil || k.Active == nil {
			continue
		}
		if o := own.Roles[r]; o == nil || o.Active == nil || o.Active.Model.Hash != k.Active.Model.Hash {
			d.log.Warn("the unit this store came from ran another model in this role; model files are not carried: deploy it again",
				zap.String("role", string(r)), zap.String("name", k.Active.Model.Name), zap.Uint64("version", k.Active.Model.Version),
				zap.String("hash", k.Active.Model.Hash))
		}
	}
}
