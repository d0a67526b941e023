package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// CheckpointConfig is the daemon's local checkpoints of its store: when
// they are taken, where, and how much disk they may hold. See
// docs/operations.md ("Checkpoints").
type CheckpointConfig struct {
	// Enabled takes checkpoints on the schedule below and on demand. It
	// needs storage; with storage off there is nothing to checkpoint.
	Enabled bool `yaml:"enabled"`
	// Dir holds the checkpoints; empty means a directory "checkpoints"
	// beside the store's directory (data_dir/checkpoints by default). It
	// may not be the store's directory, inside it, or above it.
	Dir string `yaml:"dir"`
	// FullEvery, DifferentialEvery and IncrementalEvery are how long after
	// the last checkpoint that covers it each kind is due: a full after the
	// last full, a differential after the last full or differential, an
	// incremental after the last checkpoint of any kind. 0 turns a kind off
	// (it is still taken on demand). When several are due, the most
	// demanding is taken: full, then differential, then incremental.
	FullEvery         time.Duration `yaml:"full_every"`
	DifferentialEvery time.Duration `yaml:"differential_every"`
	IncrementalEvery  time.Duration `yaml:"incremental_every"`
	// BudgetMB is the disk the local checkpoints may use, in MiB. It
	// counts against storage.quota_bytes: the store's own quota is the
	// rest. 0 means a quarter of storage.quota_bytes.
	BudgetMB int64 `yaml:"budget_mb"`
	// KeepFull is how many full checkpoints are kept locally, with every
	// checkpoint built on them.
	KeepFull int `yaml:"keep_full"`
}

// DefaultCheckpointConfig returns the defaults: on, a full weekly, a
// differential daily, an incremental hourly, a quarter of the store's
// quota, two fulls kept.
func DefaultCheckpointConfig() CheckpointConfig {
	return CheckpointConfig{
		Enabled:           true,
		FullEvery:         7 * 24 * time.Hour,
		DifferentialEvery: 24 * time.Hour,
		IncrementalEvery:  time.Hour,
		KeepFull:          2,
	}
}

// minCheckpointEvery is the shortest schedule interval.
const minCheckpointEvery = time.Second

// checkpointsOn says whether the daemon takes checkpoints: they are
// enabled and there is a store.
func (c *Config) checkpointsOn() bool { return c.StorageEnabled && c.Checkpoint.Enabled }

// storeDir is the store's directory as configured.
func (c *Config) storeDir() string {
	if c.Storage.Dir != "" {
		return c.Storage.Dir
	}
	return filepath.Join(c.DataDir, "telemetry")
}

// CheckpointDir is where the checkpoints go.
func (c *Config) CheckpointDir() string {
	if c.Checkpoint.Dir != "" {
		return c.Checkpoint.Dir
	}
	return filepath.Join(filepath.Dir(c.storeDir()), "checkpoints")
}

// CheckpointBudget is the checkpoints' disk budget in bytes; 0 when
// checkpoints are off.
func (c *Config) CheckpointBudget() int64 {
	if !c.checkpointsOn() {
		return 0
	}
	if c.Checkpoint.BudgetMB == 0 {
		return c.Storage.QuotaBytes / 4
	}
	return c.Checkpoint.BudgetMB << 20
}

// validate checks the checkpoint section against the store it
// checkpoints. The store's quota less the budget is checked with the
// rest of the storage section.
func (cc *CheckpointConfig) validate(c *Config) error {
	if !c.checkpointsOn() {
		return nil
	}
	for _, e := range []struct {
		name string
		d    time.Duration
	}{{"full_every", cc.FullEvery}, {"differential_every", cc.DifferentialEvery}, {"incremental_every", cc.IncrementalEvery}} {
		if e.d != 0 && e.d < minCheckpointEvery {
			return fmt.Errorf("checkpoint.%s %v: want 0 (none on a schedule) or at least %v", e.name, e.d, minCheckpointEvery)
		}
	}
	if cc.KeepFull < 1 {
		return fmt.Errorf("checkpoint.keep_full %d: want at least 1 (the base every later checkpoint needs)", cc.KeepFull)
	}
	if cc.BudgetMB < 0 || cc.BudgetMB > 1<<30 {
		return fmt.Errorf("checkpoint.budget_mb %d: want 0 (a quarter of storage.quota_bytes) or a size in MiB", cc.BudgetMB)
	}
	if b := c.CheckpointBudget(); b >= c.Storage.QuotaBytes {
		return fmt.Errorf("checkpoint.budget_mb %d: the budget (%d bytes) counts against storage.quota_bytes (%d) and must be less", cc.BudgetMB, b, c.Storage.QuotaBytes)
	}
	return checkpointDirApart(c.CheckpointDir(), c.storeDir())
}

// checkpointDirApart refuses a checkpoint directory that is the store's
// directory, inside it (Badger's files) or above it (the checkpoints'
// listing would take the store for a checkpoint).
func checkpointDirApart(dir, store string) error {
	if dir == "" {
		return errors.New("checkpoint.dir: empty")
	}
	a, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("checkpoint.dir %q: %w", dir, err)
	}
	s, err := filepath.Abs(store)
	if err != nil {
		return fmt.Errorf("storage.dir %q: %w", store, err)
	}
	inside := func(p, root string) bool {
		r, err := filepath.Rel(root, p)
		return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
	}
	switch {
	case a == s:
		return fmt.Errorf("checkpoint.dir %q: is the store's directory (storage.dir)", dir)
	case inside(a, s):
		return fmt.Errorf("checkpoint.dir %q: is inside the store's directory %q; put it beside it", dir, store)
	case inside(s, a):
		return fmt.Errorf("checkpoint.dir %q: holds the store's directory %q; give the checkpoints a directory of their own", dir, store)
	}
	return nil
}
