package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/watchdog"
)

// operatorStateKey is the store's state key of the operator's standing
// orders: the policy and the backends forced out by a command (socket or
// fleet), and the SHA-256 of the configuration the daemon last ran with.
// They live in the store, so they survive a restart and travel in its
// checkpoints to a replacement unit.
const operatorStateKey = "agent.operator"

// operatorState is what operatorStateKey holds.
type operatorState struct {
	Policy       string    `json:"policy,omitempty"`
	Forced       []string  `json:"forced,omitempty"`
	ConfigSHA256 string    `json:"config_sha256,omitempty"`
	Updated      time.Time `json:"updated"`
}

// operator keeps the standing orders and says what a restore brought.
type operator struct {
	mu       sync.Mutex
	state    operatorState
	restored *status.RestoredStatus
}

// configHash is the SHA-256 of the configuration as YAML: its fields with
// a name in the file, defaults filled in.
func configHash(cfg Config) string {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// loadOperatorState reapplies the standing orders kept in the store (a
// restart, or a store restored from a dead unit's checkpoint), notes the
// configuration's hash, and, for a restored store, its lineage. Without
// storage there is nothing kept.
func (d *Daemon) loadOperatorState(ctx context.Context) error {
	if d.tel == nil {
		return nil
	}
	st := d.tel.store
	var kept operatorState
	raw, err := st.GetState(operatorStateKey)
	switch {
	case errors.Is(err, storage.ErrNoState):
	case err != nil:
		return fmt.Errorf("operator state: %w", err)
	default:
		if err := json.Unmarshal(raw, &kept); err != nil {
			d.log.Warn("operator state unreadable: starting from the configuration", zap.Error(err))
			kept = operatorState{}
		}
	}
	if kept.Policy != "" {
		p, err := watchdog.ParsePolicy(kept.Policy)
		if err == nil {
			err = d.shell.Command(ctx, watchdog.Command{Op: watchdog.CmdSetPolicy, Policy: p, Reason: "operator state kept in the store"})
		}
		if err != nil {
			d.log.Warn("kept policy not applied", zap.String("policy", kept.Policy), zap.Error(err))
			kept.Policy = ""
		}
	}
	for _, name := range slices.Clone(kept.Forced) {
		b, ok := backendByName(name)
		if ok {
			err = d.shell.Command(ctx, watchdog.Command{Op: watchdog.CmdForceOut, Backend: b, Reason: "operator state kept in the store"})
		}
		if !ok || err != nil {
			d.log.Warn("kept forced-out backend not applied", zap.String("backend", name), zap.Error(err))
			kept.Forced = slices.DeleteFunc(kept.Forced, func(s string) bool { return s == name })
		}
	}
	if kept.Policy != "" || len(kept.Forced) > 0 {
		d.log.Info("operator state reapplied", zap.String("policy", kept.Policy), zap.Strings("forced", kept.Forced))
	}
	hash := configHash(d.cfg)
	var same *bool
	if kept.ConfigSHA256 != "" {
		v := kept.ConfigSHA256 == hash
		same = &v
		if !v {
			d.log.Warn("the configuration differs from the one this store last ran with", zap.String("was", kept.ConfigSHA256), zap.String("now", hash))
		}
	}
	kept.ConfigSHA256 = hash
	d.op.mu.Lock()
	d.op.state = kept
	if l, ok := st.Lineage(); ok {
		d.op.restored = &status.RestoredStatus{
			Store: fmt.Sprintf("%016x", st.StoreID()), Parent: fmt.Sprintf("%016x", l.Parent), Checkpoint: l.Checkpoint,
			RestoredAt: l.RestoredAt.UTC().Format(time.RFC3339Nano), ConfigSame: same,
			CommandsIssuedBefore: l.RestoredAt.UTC().Format(time.RFC3339Nano),
		}
		d.log.Info("restored store: a new incarnation", zap.String("parent", d.op.restored.Parent),
			zap.String("checkpoint", l.Checkpoint), zap.Time("restored_at", l.RestoredAt))
	}
	d.op.mu.Unlock()
	return d.saveOperatorState()
}

// saveOperatorState writes the standing orders to the store.
func (d *Daemon) saveOperatorState() error {
	d.op.mu.Lock()
	d.op.state.Updated = time.Now().UTC()
	b, err := json.Marshal(d.op.state)
	d.op.mu.Unlock()
	if err != nil {
		return err
	}
	if err := d.tel.store.PutState(operatorStateKey, b); err != nil {
		return fmt.Errorf("operator state: %w", err)
	}
	return nil
}

// operate carries out an operator's watchdog command (policy, force out,
// clear) and keeps it as a standing order in the store. A command that
// was carried out but could not be kept is logged, not failed: the
// vehicle runs with it until the next restart.
func (d *Daemon) operate(ctx context.Context, cmd watchdog.Command) error {
	if err := d.shell.Command(ctx, cmd); err != nil {
		return err
	}
	if d.tel == nil {
		return nil
	}
	d.op.mu.Lock()
	s := &d.op.state
	name := cmd.Backend.String()
	switch cmd.Op {
	case watchdog.CmdSetPolicy:
		s.Policy = cmd.Policy.String()
	case watchdog.CmdForceOut:
		if !slices.Contains(s.Forced, name) {
			s.Forced = append(s.Forced, name)
		}
	case watchdog.CmdClear:
		s.Forced = slices.DeleteFunc(s.Forced, func(x string) bool { return x == name })
	}
	d.op.mu.Unlock()
	if err := d.saveOperatorState(); err != nil {
		d.log.Error("operator command carried out but not kept for the next start", zap.Error(err))
	}
	return nil
}

// restoredStatus is the status document's restored section.
func (d *Daemon) restoredStatus() *status.RestoredStatus {
	d.op.mu.Lock()
	defer d.op.mu.Unlock()
	if d.op.restored == nil {
		return nil
	}
	r := *d.op.restored
	return &r
}

// notIssuedBefore is the time before which fleet commands are refused: a
// restored store's restore time (its nonce cache cannot know what the dead
// unit saw after the checkpoint), zero otherwise.
func (d *Daemon) notIssuedBefore() time.Time {
	if d.tel == nil {
		return time.Time{}
	}
	if l, ok := d.tel.store.Lineage(); ok {
		return l.RestoredAt
	}
	return time.Time{}
}
