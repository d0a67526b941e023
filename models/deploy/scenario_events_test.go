package deploy

import (
	"strings"
	"time"
)

type bogusEvent struct{}

func (bogusEvent) event() {}

// event steps the event a script line names (see TestScenarios).
func (s *scenario) event(tok []string) {
	s.t.Helper()
	arg := func(i int) string {
		if i < len(tok) {
			return tok[i]
		}
		return ""
	}
	switch tok[0] + " " + arg(1) {
	case "download done":
		s.step(DownloadDone{})
	case "download failed":
		s.step(DownloadFailed{Reason: arg(2)})
	case "verify ok":
		s.step(s.verifyDone(tok[2:]))
	case "verify refused":
		s.step(VerifyRefused{Reason: arg(2)})
	case "install done":
		s.step(InstallDone{})
	case "install failed", "install refused":
		s.step(InstallFailed{Reason: arg(2), Refused: arg(1) == "refused"})
	case "trial started":
		s.step(TrialStarted{})
	case "trial failed":
		s.step(TrialStartFailed{Reason: arg(2)})
	case "promote done":
		s.step(PromoteDone{})
	case "promote failed":
		s.step(PromoteFailed{Reason: arg(2), Swapped: arg(3) == "swapped"})
	case "watchdog failed":
		s.step(WatchdogFailed{Reason: arg(2)})
	case "watchdog suspect":
		s.step(WatchdogSuspect{Reason: arg(2)})
	case "commit done":
		s.step(CommitDone{})
	case "commit failed":
		s.step(CommitFailed{Reason: arg(2)})
	case "rollback done":
		s.step(RollbackDone{})
	case "rollback failed":
		s.step(RollbackFailed{Reason: arg(2)})
	case "cmd abort":
		s.step(Command{Op: CmdAbort, Reason: arg(2)})
	case "cmd rollback":
		s.step(Command{Op: CmdRollback, Reason: arg(2)})
	case "cmd bogus":
		s.step(Command{Op: 9})
	case "event bogus":
		s.step(bogusEvent{})
	case "event nil":
		s.step(nil)
	case "event restarted":
		s.step(Restarted{Clean: true})
	default:
		s.otherEvent(tok)
	}
}

func (s *scenario) otherEvent(tok []string) {
	s.t.Helper()
	switch tok[0] {
	case "progress":
		have, total, ok := strings.Cut(arg1(tok), "/")
		if !ok {
			s.fatalf("usage: progress <have>/<total>")
		}
		s.step(DownloadProgress{Have: int64(s.int(have)), Total: int64(s.int(total))})
	case "sample":
		s.sample(tok[1:])
	case "served":
		n := s.int(arg1(tok))
		s.stepN(Served{Requests: n}, s.repeat(tok[2:], nil))
	case "newer":
		s.newer(tok[1:])
	case "parked":
		s.step(Motion{Parked: true})
	case "moving":
		s.step(Motion{Parked: false})
	default:
		s.fatalf("unknown command %q", strings.Join(tok, " "))
	}
}

func arg1(tok []string) string {
	if len(tok) < 2 {
		return ""
	}
	return tok[1]
}

func (s *scenario) verifyDone(args []string) VerifyDone {
	var e VerifyDone
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		if e.Tolerance == nil {
			e.Tolerance = &Tolerance{}
		}
		switch k {
		case "abs":
			e.Tolerance.Abs = s.float(v)
		case "rel":
			e.Tolerance.Rel = s.float(v)
		default:
			s.fatalf("verify ok: unknown argument %q", a)
		}
	}
	return e
}

func (s *scenario) sample(args []string) {
	if len(args) < 1 {
		s.fatalf("usage: sample <kind> [lat=..] [budget=..] [xN] [every <dur>]")
	}
	e := TrialSample{Outcome: Answered, Within: true, Latency: 5 * time.Millisecond, Budget: 33 * time.Millisecond}
	switch args[0] {
	case "ok":
	case "diverge":
		e.Within = false
	case "slow":
		e.Latency = 30 * time.Millisecond
	case "error":
		e.Outcome = RunError
	case "crash":
		e.Outcome = Crashed
	case "hang":
		e.Outcome = Hung
	case "nan":
		e.Outcome = InvalidOutput
	case "bogus":
		e.Outcome = 0
	default:
		s.fatalf("unknown sample kind %q", args[0])
	}
	rep := s.repeat(args[1:], func(a string) bool {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case ok && k == "lat":
			e.Latency = s.dur(v)
		case ok && k == "budget":
			e.Budget = s.dur(v)
		default:
			return false
		}
		return true
	})
	s.stepN(e, rep)
}

func (s *scenario) newer(args []string) {
	cur := s.deployment().Spec()
	spec := Spec{Role: cur.Role, Name: cur.Name, Version: cur.Version + 1, Issued: cur.Issued.Add(time.Minute)}
	hash := ""
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "version":
			spec.Version = uint64(s.int(v))
		case "hash":
			hash = v
		case "issued":
			spec.Issued = t0.Add(s.dur(v))
		case "role":
			spec.Role = v
		default:
			s.fatalf("newer: unknown argument %q", a)
		}
	}
	spec.Hash = s.hash(hash, spec.Version)
	s.step(Newer{Spec: spec})
}

type repetition struct {
	n     int
	every time.Duration
}

// repeat parses the trailing [xN] [every <dur>] of an event line; other
// arguments go to arg, which reports whether it took them.
func (s *scenario) repeat(args []string, arg func(string) bool) repetition {
	rep := repetition{n: 1}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "every" && i+1 < len(args):
			rep.every = s.dur(args[i+1])
			i++
		case strings.HasPrefix(a, "x"):
			rep.n = s.int(a[1:])
		default:
			if arg == nil || !arg(a) {
				s.fatalf("unexpected argument %q", a)
			}
		}
	}
	return rep
}

// stepN steps ev rep.n times, advancing the clock by rep.every before
// each.
func (s *scenario) stepN(ev Event, rep repetition) {
	for range rep.n {
		s.now = s.now.Add(rep.every)
		s.step(ev)
	}
}
