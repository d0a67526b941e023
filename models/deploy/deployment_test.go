package deploy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestNewRefusals: a bad configuration or spec makes no deployment, and
// the error names the field.
func TestNewRefusals(t *testing.T) {
	bad := DefaultConfig()
	bad.Timeouts.Trial = 0
	bad.LatencyQuantile = 2
	d, r, err := New(bad, testSpec(), t0)
	var fe *FieldError
	if d != nil || r.Actions != nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), "timeout_trial") || !strings.Contains(err.Error(), "latency_quantile") {
		t.Fatalf("New with a bad config: %v %v %v", d, r, err)
	}
	for _, tt := range []struct {
		edit func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Issued = time.Time{} }, "spec: issued: missing"},
		{func(s *Spec) { s.ID = strings.Repeat("x", 129) }, "spec: id: want at most 128 characters"},
		{func(s *Spec) { s.Name = "" }, "spec: name"},
		{func(s *Spec) { s.Version = 0 }, "spec: version"},
		{func(s *Spec) { s.Hash = strings.Repeat("AB", 32) }, "64 lowercase hex digits"},
		{func(s *Spec) { s.Role = "" }, "spec: role"},
	} {
		spec := testSpec()
		tt.edit(&spec)
		if d, _, err := New(DefaultConfig(), spec, t0); d != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v): %v, want an error containing %q", spec, err, tt.want)
		}
	}
}

// TestOptionsFixedAtNew: the configuration's options are or'ed into the
// spec when the deployment starts and stay with it after a restart under
// another configuration.
func TestOptionsFixedAtNew(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ParkedOnly, cfg.SkipTrial = true, true
	d, _, err := New(cfg, testSpec(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Spec(); !s.ParkedOnly || !s.SkipTrial {
		t.Fatalf("spec %+v", s)
	}
	d2, err := Restore(DefaultConfig(), d.Save())
	if err != nil {
		t.Fatal(err)
	}
	d2.Step(t0, Restarted{Clean: true})
	for _, ev := range []Event{DownloadDone{}, VerifyDone{}, InstallDone{}} {
		d2.Step(t0, ev)
	}
	if d2.State() != Promoting || !d2.Status().Held {
		t.Fatalf("state %s held %v, want a held promotion without trial", d2.State(), d2.Status().Held)
	}
}

func TestTimeNeverGoesBack(t *testing.T) {
	d, _, err := New(DefaultConfig(), testSpec(), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// A step stamped before New's time is taken at New's time: the
	// download's timeout counts from then, not from the past.
	d.Step(t0, DownloadDone{})
	if s := d.Status(); !s.Since.Equal(t0.Add(time.Hour)) || !s.Deadline.Equal(t0.Add(time.Hour+10*time.Minute)) {
		t.Fatalf("since %v deadline %v", s.Since, s.Deadline)
	}
}

// TestRejectedEvents: malformed events and commands are refused with the
// sentinel a caller branches on, and change nothing.
func TestRejectedEvents(t *testing.T) {
	other := testSpec()
	other.Issued, other.Hash = t0.Add(time.Minute), strings.Repeat("cd", 32)
	tests := []struct {
		ev   Event
		want error
		text string
	}{
		{nil, ErrBadEvent, "nil event"},
		{bogusEvent{}, ErrBadEvent, "unknown event"},
		{Restarted{Slot: 4}, ErrBadEvent, "unknown slot position 4"},
		{Restarted{}, ErrUnexpected, "not restored"},
		{Command{}, ErrBadEvent, "unknown command 0"},
		{Command{Op: CmdRollback}, ErrNotPromoted, "never served"},
		{Newer{Spec: Spec{}}, ErrBadEvent, "newer: spec: role"},
		{Newer{Spec: testSpec()}, ErrDuplicate, "already trial"},
		{Newer{Spec: func() Spec { s := other; s.Issued = t0; return s }()}, ErrNotNewer, "not after"},
		{TrialSample{Outcome: 7}, ErrBadEvent, "unknown outcome 7"},
		{TrialSample{Outcome: Answered}, ErrBadEvent, "deadline budget of 0s"},
		{DownloadProgress{Have: 1}, ErrBadEvent, "1 of 0 bytes"},
		{VerifyDone{Tolerance: &Tolerance{Rel: -1}}, ErrBadEvent, "tolerance rel"},
		{Served{Requests: 1}, ErrUnexpected, "served in state trial"},
		{CommitDone{}, ErrUnexpected, "commit done in state trial"},
	}
	for _, tt := range tests {
		d := inTrial(t)
		before := d.Save()
		r := d.Step(t0.Add(time.Minute), tt.ev)
		if !errors.Is(r.Rejected, tt.want) || !strings.Contains(r.Rejected.Error(), tt.text) {
			t.Errorf("Step(%#v): rejected %v, want %v containing %q", tt.ev, r.Rejected, tt.want, tt.text)
		}
		if r.Changed || len(r.Actions) != 0 || d.Save() != before {
			t.Errorf("Step(%#v) changed something: %+v", tt.ev, r)
		}
	}
}

// TestStatus shows what a status page gets.
func TestStatus(t *testing.T) {
	d, _, err := New(DefaultConfig(), testSpec(), t0)
	if err != nil {
		t.Fatal(err)
	}
	d.Step(t0.Add(time.Minute), DownloadProgress{Have: 30, Total: 100})
	st := d.Status()
	if st.State != Downloading || st.Download != (Progress{30, 100}) || !st.Deadline.Equal(t0.Add(6*time.Hour)) ||
		!st.Started.Equal(t0) || st.Spec.Version != 3 || d.Done() || d.Config().GateRequests != 1000 {
		t.Fatalf("status %+v", st)
	}
}

func TestStateNames(t *testing.T) {
	for s := Downloading; s < numStates; s++ {
		p, err := ParseState(s.String())
		if err != nil || p != s {
			t.Errorf("ParseState(%q) = %v, %v", s.String(), p, err)
		}
		if s.Terminal() != (s >= Committed) {
			t.Errorf("%s: terminal %v", s, s.Terminal())
		}
	}
	if _, err := State(0).MarshalText(); err == nil {
		t.Error("the zero state encoded")
	}
	if _, err := ParseState("none"); err == nil {
		t.Error("none parsed")
	}
	if State(99).String() != "state(99)" || Outcome(9).String() != "outcome(9)" || SlotPosition(7).String() != "slot(7)" || CommandOp(5).String() != "command(5)" {
		t.Error("unknown values print badly")
	}
}
