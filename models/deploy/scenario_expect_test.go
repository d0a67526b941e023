package deploy

import (
	"fmt"
	"strconv"
	"strings"
)

// expect checks the assertions of one `expect` line (see TestScenarios).
func (s *scenario) expect(args []string) {
	s.t.Helper()
	if len(args) == 0 {
		s.fatalf("expect what?")
	}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "action":
			if i+1 == len(args) {
				s.fatalf("usage: expect action <name>[~text]")
			}
			s.expectAction(args[i+1])
			i++
		case a == "report":
			if i+1 == len(args) {
				s.fatalf("usage: expect report <from>-><to> [reason~text]")
			}
			n := 1
			if i+2 < len(args) && strings.HasPrefix(args[i+2], "reason~") {
				n = 2
			}
			s.expectReport(args[i+1 : i+1+n])
			i += n
		case a == "no-action":
			if len(s.actions) > 0 {
				s.fatalf("want no pending action")
			}
		case a == "no-report":
			if len(s.reports) > 0 {
				s.fatalf("want no pending report")
			}
		case a == "no-rejected":
			if len(s.rejected) > 0 {
				s.fatalf("want no pending rejection")
			}
		case strings.HasPrefix(a, "rejected~"):
			s.expectRejected(strings.TrimPrefix(a, "rejected~"))
		default:
			s.expectOne(a)
		}
	}
}

func (s *scenario) expectAction(arg string) {
	name, text, _ := strings.Cut(arg, "~")
	for i, a := range s.actions {
		str := a.String()
		if (str == name || strings.HasPrefix(str, name+" ") || strings.HasPrefix(str, name+":")) && strings.Contains(str, text) {
			s.actions = append(s.actions[:i:i], s.actions[i+1:]...)
			return
		}
	}
	s.fatalf("no pending action %s containing %q", name, text)
}

func (s *scenario) expectReport(args []string) {
	if len(args) < 1 || len(args) > 2 {
		s.fatalf("usage: expect report <from>-><to> [reason~text]")
	}
	from, to, ok := strings.Cut(args[0], "->")
	if !ok {
		s.fatalf("want <from>-><to>, got %q", args[0])
	}
	var reason string
	if len(args) == 2 {
		r, ok := strings.CutPrefix(args[1], "reason~")
		if !ok {
			s.fatalf("want reason~text, got %q", args[1])
		}
		reason = r
	}
	for i, tr := range s.reports {
		if tr.From.String() == from && tr.To.String() == to && strings.Contains(tr.Reason, reason) {
			s.reports = append(s.reports[:i:i], s.reports[i+1:]...)
			return
		}
	}
	s.fatalf("no pending report %s->%s with reason containing %q", from, to, reason)
}

func (s *scenario) expectRejected(text string) {
	for i, e := range s.rejected {
		if strings.Contains(e.Error(), text) {
			s.rejected = append(s.rejected[:i:i], s.rejected[i+1:]...)
			return
		}
	}
	s.fatalf("no pending rejection containing %q", text)
}

// expectOne checks one key=value or key~text assertion.
func (s *scenario) expectOne(a string) {
	s.t.Helper()
	i := strings.IndexAny(a, "=~")
	if i < 0 {
		s.fatalf("want key=value or key~text, got %q", a)
	}
	key, op, want := a[:i], a[i], a[i+1:]
	if key == "error" {
		if op != '~' {
			s.fatalf("use error~text")
		}
		if s.err == nil || !strings.Contains(s.err.Error(), want) {
			s.fatalf("want an error containing %q, got %v", want, s.err)
		}
		return
	}
	st := s.deployment().Status()
	var got string
	switch key {
	case "state":
		got = st.State.String()
	case "held":
		got = strconv.FormatBool(st.Held)
	case "reason":
		got = st.Reason
	case "deadline":
		got, want = "none", strings.TrimPrefix(want, "+")
		if !st.Deadline.IsZero() {
			got = st.Deadline.Sub(s.now).String()
		}
		if want != "none" {
			want = s.dur(want).String()
		}
	case "done":
		got = strconv.FormatBool(s.d.Done())
	case "quarantine":
		got = st.Quarantine
	case "tolerance":
		got = fmt.Sprintf("%g/%g", st.Tolerance.Abs, st.Tolerance.Rel)
	case "parked_only":
		got = strconv.FormatBool(st.Spec.ParkedOnly)
	case "skip_trial":
		got = strconv.FormatBool(st.Spec.SkipTrial)
	case "have":
		got = fmt.Sprint(st.Download.Have)
	default:
		got = s.count(key, st)
	}
	if op == '~' {
		if !strings.Contains(got, want) {
			s.fatalf("%s: got %q, want it to contain %q", key, got, want)
		}
	} else if got != want {
		s.fatalf("%s: got %q, want %q", key, got, want)
	}
}

func (s *scenario) count(key string, st Status) string {
	switch key {
	case "compared":
		return fmt.Sprint(st.Trial.Compared)
	case "divergent":
		return fmt.Sprint(st.Trial.Divergent)
	case "slow":
		return fmt.Sprint(st.Trial.Slow)
	case "errors":
		return fmt.Sprint(st.Trial.Errors)
	case "trial_passed":
		return strconv.FormatBool(st.Trial.Passed)
	case "requests":
		return fmt.Sprint(st.Gate.Requests)
	case "suspects":
		return fmt.Sprint(st.Gate.Suspects)
	case "gate_passed":
		return strconv.FormatBool(st.Gate.Passed)
	case "crashes":
		return fmt.Sprint(st.Crashes)
	}
	s.fatalf("unknown expectation %q", key)
	return ""
}
