package agent

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// retentionPlan is what retention deletes, oldest first, and why it could
// not bring the checkpoints under their budget ("" when it could).
type retentionPlan struct {
	remove []string
	over   string
}

// planRetention decides which of ms (oldest first) to delete: the
// checkpoints that are not among the newest keepFull fulls or built on
// them; then, while the rest hold more than budget bytes, the oldest that
// no remaining checkpoint builds on, those the cloud has (shipped, when
// set) before those it has not. It never deletes the newest checkpoint
// (the next one's base and sequence), a busy one (being uploaded) or a
// base that a checkpoint it keeps needs.
func planRetention(ms []*manifest.Manifest, size map[string]int64, keepFull int, budget int64, busy map[string]bool, shipped func(id string) bool) retentionPlan {
	if len(ms) == 0 {
		return retentionPlan{}
	}
	byID := map[string]*manifest.Manifest{}
	var fulls []string
	for _, m := range ms {
		byID[m.ID] = m
		if m.Kind == manifest.Full {
			fulls = append(fulls, m.ID)
		}
	}
	keptFull := map[string]bool{}
	for _, id := range fulls[max(len(fulls)-keepFull, 0):] {
		keptFull[id] = true
	}
	// root is the full a checkpoint's chain starts from ("" for a chain
	// with a gap).
	root := func(m *manifest.Manifest) string {
		for seen := 0; m != nil && seen <= len(ms); seen++ {
			if m.Kind == manifest.Full {
				return m.ID
			}
			m = byID[m.Base]
		}
		return ""
	}
	stay := []string{ms[len(ms)-1].ID}
	for _, m := range ms {
		if keptFull[root(m)] || busy[m.ID] {
			stay = append(stay, m.ID)
		}
	}
	need := manifest.Needed(ms, stay)
	var plan retentionPlan
	var rest []*manifest.Manifest
	var used int64
	for _, m := range ms {
		if need[m.ID] {
			rest = append(rest, m)
			used += size[m.ID]
		} else {
			plan.remove = append(plan.remove, m.ID)
		}
	}
	deletable := func(m *manifest.Manifest) bool {
		return !busy[m.ID] && !slices.ContainsFunc(rest, func(o *manifest.Manifest) bool { return o.Base == m.ID })
	}
	for used > budget {
		i := -1
		if shipped != nil {
			i = slices.IndexFunc(rest[:len(rest)-1], func(m *manifest.Manifest) bool { return deletable(m) && shipped(m.ID) })
		}
		if i < 0 {
			i = slices.IndexFunc(rest[:len(rest)-1], deletable)
		}
		if i < 0 {
			plan.over = fmt.Sprintf("%d bytes over the budget of %d: the %d checkpoints left are the newest, bases that kept checkpoints need, or being uploaded", used-budget, budget, len(rest))
			break
		}
		plan.remove = append(plan.remove, rest[i].ID)
		used -= size[rest[i].ID]
		rest = slices.Delete(rest, i, i+1)
	}
	return plan
}

// deletingPrefix marks a checkpoint being deleted: renamed first, so that
// a crash never leaves a checkpoint without its manifest under its own
// name (the listing would refuse the directory).
const deletingPrefix = ".deleting-"

// retain reads the directory, applies retention and notes what is left.
// It runs on the worker only, so never beside a Take.
func (c *checkpointer) retain() {
	dir := c.cc.Dir
	if err := removeDeleting(dir); err != nil {
		c.retainFailed(err)
		return
	}
	ms, err := manifest.List(dir)
	if err != nil {
		c.retainFailed(err)
		return
	}
	size := map[string]int64{}
	for _, m := range ms {
		size[m.ID] = dirBytes(filepath.Join(dir, m.ID))
	}
	var busy map[string]bool
	if c.cc.Busy != nil {
		busy = c.cc.Busy()
	}
	plan := planRetention(ms, size, c.cc.Sched.KeepFull, c.cc.Budget, busy, c.cc.Shipped)
	var deleted uint64
	for _, id := range plan.remove {
		gone := filepath.Join(dir, deletingPrefix+id)
		if err := os.Rename(filepath.Join(dir, id), gone); err != nil {
			c.retainFailed(fmt.Errorf("checkpoint %s: delete: %w", id, err))
			break
		}
		if err := os.RemoveAll(gone); err != nil {
			c.retainFailed(fmt.Errorf("checkpoint %s: delete: %w", id, err))
		}
		deleted++
		c.cc.Log.Info("checkpoint deleted by retention", zap.String("id", id))
	}
	if plan.over != "" {
		c.cc.Log.Warn("checkpoints over their budget (checkpoint.budget_mb)", zap.String("dir", dir), zap.String("why", plan.over))
	}
	ms, err = manifest.List(dir)
	if err != nil {
		c.retainFailed(err)
		return
	}
	used := dirBytes(dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.deleted += deleted
	c.st.kept, c.st.used, c.st.overBudget = len(ms), used, plan.over
	for _, m := range ms {
		if l := c.st.last[m.Kind]; l == nil || m.Seq > l.Seq {
			c.st.last[m.Kind] = m
		}
	}
}

func (c *checkpointer) retainFailed(err error) {
	c.failed(fmt.Errorf("retention: %w", err))
	c.cc.Log.Error("checkpoint retention failed", zap.String("dir", c.cc.Dir), zap.Error(err))
}

// removeDeleting finishes the deletions a crash interrupted.
func removeDeleting(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), deletingPrefix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
