package deploy

import (
	"errors"
	"testing"
	"time"
)

// edges is the transition table of the package documentation: the states
// each state may go to (a state to itself: a restart, a parked promotion
// starting, the health gate starting over).
var edges = map[State][]State{
	0:           {Downloading},
	Downloading: {Downloading, Verifying, Failed, TimedOut, Aborted, Replaced},
	Verifying:   {Verifying, Verified, Refused, TimedOut, Aborted, Replaced},
	Verified:    {Verified, Staged, Refused, Failed, TimedOut, Aborted, Replaced},
	Staged:      {Staged, Trial, Promoting, TrialFailed, Failed, TimedOut, Aborted, Replaced},
	Trial:       {Staged, Promoting, TrialFailed, Failed, TimedOut, Aborted, Replaced},
	Promoting:   {Promoting, Promoted, RollingBack, Failed, TimedOut, Aborted, Replaced},
	Promoted:    {Promoted, Committing, RollingBack, Failed},
	Committing:  {Committing, Committed, Failed, TimedOut},
	RollingBack: {RollingBack, RolledBack, Failed, TimedOut},
}

func allowed(from, to State) bool {
	for _, s := range edges[from] {
		if s == to {
			return true
		}
	}
	return false
}

var sentinels = []error{ErrBadEvent, ErrUnexpected, ErrBusy, ErrNotPromoted, ErrDone, ErrNotNewer, ErrDuplicate, ErrNotResumed}

// invariants checks a deployment after every step. It remembers what one
// step cannot show: how many outcomes were reached.
type invariants struct {
	outcomes int
}

func newInvariants(*Deployment) *invariants { return &invariants{} }

// restored is told that the deployment was replaced by its Restore.
func (inv *invariants) restored(*Deployment) {}

// checkNew checks what New returned.
func (inv *invariants) checkNew(t testing.TB, d *Deployment, now time.Time, r Ready) {
	t.Helper()
	if !r.Changed || r.Rejected != nil || len(r.Actions) != 2 {
		t.Fatalf("New: %+v", r)
	}
	if _, ok := r.Actions[0].(Report); !ok {
		t.Fatalf("New: first action %v, want a report", r.Actions[0])
	}
	inv.check(t, d, Saved{}, now, Tick{}, r)
}

// step steps ev and checks the invariants.
func (inv *invariants) step(t testing.TB, d *Deployment, now time.Time, ev Event) Ready {
	t.Helper()
	before := d.Save()
	clone := *d
	r := d.Step(now, ev)
	if r.Rejected != nil {
		// A rejected event changes nothing: the step is a Tick's.
		want := clone.Step(now, Tick{})
		if d.Save() != clone.Save() || d.deadline != clone.deadline || actionsString(r.Actions) != actionsString(want.Actions) {
			t.Fatalf("rejected %T (%v) changed the deployment:\n got %+v %v\nwant %+v %v", ev, r.Rejected,
				d.Save(), r.Actions, clone.Save(), want.Actions)
		}
		known := false
		for _, e := range sentinels {
			known = known || errors.Is(r.Rejected, e)
		}
		if !known {
			t.Fatalf("rejection %v wraps no sentinel", r.Rejected)
		}
	}
	inv.check(t, d, before, now, ev, r)
	return r
}

func actionsString(as []Action) string {
	var s string
	for _, a := range as {
		s += a.String() + "\n"
	}
	return s
}

// check checks the deployment after a step from before.
func (inv *invariants) check(t testing.TB, d *Deployment, before Saved, now time.Time, ev Event, r Ready) {
	t.Helper()
	s := d.Save()
	if r.Changed != (s != before) {
		t.Fatalf("%T: Changed %v, but the saved state %s", ev, r.Changed, map[bool]string{true: "differs", false: "is the same"}[s != before])
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("%T: saved state does not validate: %v", ev, err)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := DecodeSaved(b); err != nil || !sameSaved(back, s) {
		t.Fatalf("saved state does not survive encoding: %v\n%s", err, b)
	}
	inv.checkReports(t, d, before.State, r)
	if before.State.Terminal() && s.State != before.State {
		t.Fatalf("%T: left outcome %s for %s", ev, before.State, s.State)
	}
	if d.resumed {
		if s.State.Terminal() != d.deadline.IsZero() {
			t.Fatalf("state %s with deadline %v", s.State, d.deadline)
		}
		if !s.State.Terminal() && !d.deadline.After(now) {
			t.Fatalf("state %s with a deadline %v not after now %v", s.State, d.deadline, now)
		}
	}
	if s.Held && (s.State != Promoting || !s.Spec.ParkedOnly || d.parked) {
		t.Fatalf("held in state %s, parked-only %v, parked %v", s.State, s.Spec.ParkedOnly, d.parked)
	}
	for _, a := range r.Actions {
		inv.checkAction(t, d, before, now, a, r)
	}
}

// sameSaved compares saved states whose times may differ in location.
func sameSaved(a, b Saved) bool {
	if !a.Since.Equal(b.Since) || !a.Started.Equal(b.Started) || !a.Spec.Issued.Equal(b.Spec.Issued) ||
		!a.Trial.Started.Equal(b.Trial.Started) || !a.Gate.Started.Equal(b.Gate.Started) {
		return false
	}
	a.Since, a.Started, a.Spec.Issued, a.Trial.Started, a.Gate.Started = b.Since, b.Started, b.Spec.Issued, b.Trial.Started, b.Gate.Started
	return a == b
}

// checkReports follows the step's reports from the state before: each
// starts where the last ended, follows an edge and has a reason; the last
// ends in the current state, and at most one ever ends in an outcome.
func (inv *invariants) checkReports(t testing.TB, d *Deployment, from State, r Ready) {
	t.Helper()
	cur := from
	for _, a := range r.Actions {
		rep, ok := a.(Report)
		if !ok {
			continue
		}
		if rep.From != cur || !allowed(rep.From, rep.To) || rep.Reason == "" {
			t.Fatalf("report %v after state %s: not allowed", rep.Transition, cur)
		}
		if rep.To.Terminal() {
			inv.outcomes++
			if inv.outcomes > 1 {
				t.Fatalf("a second outcome: %v", rep.Transition)
			}
		}
		cur = rep.To
	}
	if cur != d.State() {
		t.Fatalf("reports end in %s, the state is %s", cur, d.State())
	}
}

// checkAction checks that a is what the state after the step allows.
func (inv *invariants) checkAction(t testing.TB, d *Deployment, before Saved, now time.Time, a Action, r Ready) {
	t.Helper()
	s, cfg := d.Save(), d.Config()
	fail := func(why string) { t.Fatalf("action %v %s (state %s, before %s)", a, why, s.State, before.State) }
	switch a := a.(type) {
	case Download:
		if s.State != Downloading {
			fail("outside downloading")
		}
	case Verify:
		if s.State != Verifying {
			fail("outside verifying")
		}
	case Install:
		if s.State != Verified {
			fail("outside verified")
		}
	case StartTrial:
		if s.State != Staged || a.Tolerance != s.Tolerance {
			fail("outside staged or with another tolerance")
		}
	case Promote:
		if s.State != Promoting || s.Held || !(s.Trial.Passed || s.Spec.SkipTrial) || (s.Spec.ParkedOnly && !d.parked) {
			fail("without a passed trial, or while held or moving")
		}
	case Commit:
		g := s.Gate
		if s.State != Committing || !g.Passed || g.Requests < cfg.GateRequests || now.Sub(g.Started) < cfg.GateDuration {
			fail("without a passed health gate")
		}
	case Rollback:
		if s.State != RollingBack || a.Reason != s.Quarantine || a.Reason == "" {
			fail("outside rolling back or without its reason")
		}
		if before.State != Promoting && before.State != Promoted && before.State != RollingBack {
			fail("for a model that never served")
		}
	case Reject:
		if a.Reason == "" || a.Reason != s.Quarantine {
			fail("without its quarantine reason")
		}
	case StartNewer:
		if !s.State.Terminal() || r.Rejected != nil {
			fail("while this deployment goes on")
		}
	}
}
