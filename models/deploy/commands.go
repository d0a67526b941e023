package deploy

import (
	"fmt"
	"time"
)

// beforeSwap says whether the deployment's model has not served, and
// cannot be serving: it may be aborted or replaced without a rollback.
func (d *Deployment) beforeSwap() bool {
	switch d.s.State {
	case Downloading, Verifying, Verified, Staged, Trial:
		return true
	case Promoting:
		return d.s.Held
	}
	return false
}

// command applies an operator command.
func (d *Deployment) command(now time.Time, c Command) error {
	if c.Op != CmdAbort && c.Op != CmdRollback {
		return fmt.Errorf("%w: unknown command %d", ErrBadEvent, uint8(c.Op))
	}
	reason := "operator " + c.Op.String()
	if c.Reason != "" {
		reason += ": " + c.Reason
	}
	spec := d.s.Spec
	switch {
	case d.s.State.Terminal():
		return fmt.Errorf("%w: %s: %s is %s", ErrDone, c.Op, spec, d.s.State)
	case c.Op == CmdAbort && d.beforeSwap():
		d.finish(now, Aborted, reason, false)
	case c.Op == CmdAbort:
		return fmt.Errorf("%w: abort: %s is %s and abort does not change what serves; roll it back", ErrBusy, spec, d.s.State)
	case d.s.State == Promoted:
		d.rollback(now, reason)
	case d.beforeSwap():
		return fmt.Errorf("%w: rollback: %s never served (state %s); abort it instead", ErrNotPromoted, spec, d.stateName())
	default:
		return fmt.Errorf("%w: rollback: %s is %s; retry by %s", ErrBusy, spec, d.s.State, d.deadline.UTC().Format(time.RFC3339))
	}
	return nil
}

// newer decides whether a newer deployment for the role replaces this
// one. Before the swap it always does (the fleet's latest word wins, and
// nothing that serves changes). From the swap until the outcome it never
// does: the new model is judged by its health gate first, which the
// state's timeout bounds. Over, this one steps aside.
func (d *Deployment) newer(now time.Time, n Newer) error {
	cur, next := d.s.Spec, n.Spec
	if err := next.Validate(); err != nil {
		return fmt.Errorf("%w: newer: %v", ErrBadEvent, err)
	}
	if next.Role != cur.Role {
		return fmt.Errorf("%w: newer: role %s, this deployment's is %s", ErrBadEvent, next.Role, cur.Role)
	}
	live := !d.s.State.Terminal()
	if live && next.Hash == cur.Hash {
		return fmt.Errorf("%w: %s is already %s", ErrDuplicate, cur, d.s.State)
	}
	if !next.Issued.After(cur.Issued) {
		return fmt.Errorf("%w: %s issued %s, not after %s issued %s", ErrNotNewer, next,
			next.Issued.UTC().Format(time.RFC3339), cur, cur.Issued.UTC().Format(time.RFC3339))
	}
	switch {
	case !live:
	case d.beforeSwap():
		d.finish(now, Replaced, "replaced by "+next.String(), false)
	default:
		return fmt.Errorf("%w: %s is %s; a newer deployment may start once it commits or rolls back (by %s)",
			ErrBusy, cur, d.s.State, d.deadline.UTC().Format(time.RFC3339))
	}
	d.emit(StartNewer{Spec: next})
	return nil
}
