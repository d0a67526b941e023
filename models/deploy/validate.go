package deploy

import (
	"fmt"
	"strings"
)

// validate checks an event's own fields, before the state is looked at.
func validate(ev Event) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadEvent, eventName(ev), fmt.Sprintf(format, args...))
	}
	switch e := ev.(type) {
	case DownloadProgress:
		if e.Have < 0 || e.Total <= 0 || e.Have > e.Total {
			return bad("%d of %d bytes: want 0 <= have <= total and total > 0", e.Have, e.Total)
		}
	case VerifyDone:
		if e.Tolerance != nil {
			if err := e.Tolerance.Validate(); err != nil {
				return bad("%v", err)
			}
		}
	case TrialSample:
		return e.validate()
	case Served:
		if e.Requests < 1 {
			return bad("%d requests: want at least 1", e.Requests)
		}
	case DownloadDone, DownloadFailed, VerifyRefused, InstallDone, InstallFailed,
		TrialStarted, TrialStartFailed, PromoteDone, PromoteFailed, WatchdogFailed,
		WatchdogSuspect, CommitDone, CommitFailed, RollbackDone, RollbackFailed:
	default:
		return fmt.Errorf("%w: unknown event %T", ErrBadEvent, ev)
	}
	return nil
}

func (s TrialSample) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: trial sample: %s", ErrBadEvent, fmt.Sprintf(format, args...))
	}
	if s.Outcome < Answered || s.Outcome > InvalidOutput {
		return bad("unknown outcome %d", uint8(s.Outcome))
	}
	if s.Latency < 0 {
		return bad("negative latency %v", s.Latency)
	}
	if s.Outcome == Answered && s.Budget <= 0 {
		return bad("answered with a deadline budget of %v: want it positive", s.Budget)
	}
	return nil
}

func (r Restarted) validate() error {
	if r.Slot > SlotCommitted {
		return fmt.Errorf("%w: restarted: unknown slot position %d", ErrBadEvent, uint8(r.Slot))
	}
	return nil
}

// eventName is an event's type name in words: "download done",
// "trial sample".
func eventName(ev Event) string {
	name := fmt.Sprintf("%T", ev)
	name = strings.TrimPrefix(name, "deploy.")
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte(' ')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
