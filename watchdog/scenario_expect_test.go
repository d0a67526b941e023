package watchdog

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
	switch args[0] {
	case "transition":
		s.expectTransition(args[1:])
		return
	case "alert":
		if len(args) != 2 {
			s.fatalf("usage: expect alert <kind>[~text]")
		}
		s.expectAlert(args[1])
		return
	}
	for _, a := range args {
		switch a {
		case "no-transition":
			if len(s.transitions) > 0 {
				s.fatalf("want no pending transition")
			}
		case "no-canary":
			if len(s.canaries) > 0 {
				s.fatalf("want no pending canary")
			}
		case "no-alert":
			if len(s.alerts) > 0 {
				s.fatalf("want no pending alert")
			}
		default:
			s.expectOne(a)
		}
	}
}

func (s *scenario) expectTransition(args []string) {
	if len(args) < 2 || len(args) > 3 {
		s.fatalf("usage: expect transition <backend> <from>-><to> [reason~text]")
	}
	b := s.backend(args[0])
	fromS, toS, ok := strings.Cut(args[1], "->")
	if !ok {
		s.fatalf("want <from>-><to>, got %q", args[1])
	}
	from, to := s.state(fromS), s.state(toS)
	var reason string
	if len(args) == 3 {
		r, ok := strings.CutPrefix(args[2], "reason~")
		if !ok {
			s.fatalf("want reason~text, got %q", args[2])
		}
		reason = r
	}
	for i, tr := range s.transitions {
		if tr.Backend == b && tr.From == from && tr.To == to && strings.Contains(tr.Reason, reason) {
			s.transitions = append(s.transitions[:i:i], s.transitions[i+1:]...)
			return
		}
	}
	s.fatalf("no pending transition %s %s->%s with reason containing %q", b, from, to, reason)
}

func (s *scenario) expectAlert(arg string) {
	kind, text, _ := strings.Cut(arg, "~")
	for i, a := range s.alerts {
		if a.Kind.String() == kind && strings.Contains(a.Message, text) {
			s.alerts = append(s.alerts[:i:i], s.alerts[i+1:]...)
			return
		}
	}
	s.fatalf("no pending %s alert containing %q", kind, text)
}

func (s *scenario) state(v string) State {
	st, err := ParseState(v)
	if err != nil {
		s.fatalf("%v", err)
	}
	return st
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
			s.fatalf("want config error containing %q, got %v", want, s.err)
		}
		return
	}
	if key == "canary" {
		s.expectCanary(want)
		return
	}

	m := s.machine()
	name, arg := key, ""
	if j := strings.IndexByte(key, '('); j >= 0 && strings.HasSuffix(key, ")") {
		name, arg = key[:j], key[j+1:len(key)-1]
	}
	p := m.Plan()
	c := m.Counters()
	var got string
	switch name {
	case "state":
		got = m.State(s.backend(arg)).String()
	case "reason":
		got = m.Reason(s.backend(arg))
	case "plan":
		s.expectPlan(&p, want)
		return
	case "prefer":
		got = joinBackends(p.PreferList())
	case "active":
		got = "none"
		if b, ok := p.Active(); ok {
			got = b.String()
		}
	case "policy":
		got = m.Policy().String()
	case "compare":
		got = strconv.FormatBool(p.Compare)
	case "vote":
		got = strconv.FormatBool(p.Vote)
	case "mrm":
		got = strconv.FormatBool(p.MRM)
	case "plan_reason":
		got = p.Reason
	case "seq":
		got = strconv.FormatUint(p.Seq, 10)
	case "delay":
		st, ok := p.Lookup(s.backend(arg))
		if !ok {
			s.fatalf("plan does not start %s", arg)
		}
		if d := s.dur(want); st.Delay != d {
			s.fatalf("delay(%s): got %v, want %v", arg, st.Delay, d)
		}
		return
	case "estimate":
		got = m.Status().Backends[s.backend(arg)].Latency.String()
		want = s.dur(want).String()
	case "switches":
		got = fmt.Sprint(c.Switches)
	case "failovers":
		got = fmt.Sprint(c.Failovers)
	case "failbacks":
		got = fmt.Sprint(c.Failbacks)
	case "transitions":
		got = fmt.Sprint(c.Transitions)
	case "deferred":
		got = fmt.Sprint(c.DeferredFailbacks)
	case "divergences":
		got = fmt.Sprint(c.Divergences)
	case "outvoted":
		got = fmt.Sprint(c.Outvoted)
	case "inconclusive":
		got = fmt.Sprint(c.InconclusiveVotes)
	case "mrm_entries":
		got = fmt.Sprint(c.MRMEntries)
	case "request_faults":
		got = fmt.Sprint(c.RequestFaults)
	default:
		s.fatalf("unknown expectation %q", key)
	}
	if op == '~' {
		if !strings.Contains(got, want) {
			s.fatalf("%s: got %q, want it to contain %q", key, got, want)
		}
	} else if got != want {
		s.fatalf("%s: got %q, want %q", key, got, want)
	}
}

func (s *scenario) expectCanary(want string) {
	b := s.backend(want)
	for i, c := range s.canaries {
		if c.Backend == b {
			s.canaries = append(s.canaries[:i:i], s.canaries[i+1:]...)
			return
		}
	}
	s.fatalf("no pending canary for %s", b)
}

// expectPlan compares Starts with "primary@0,shadow@12ms,degraded" (delays
// optional) or "none".
func (s *scenario) expectPlan(p *Plan, want string) {
	if want == "none" {
		if p.NumStarts != 0 || !p.MRM {
			s.fatalf("plan: got %v, want none (MRM)", *p)
		}
		return
	}
	entries := strings.Split(want, ",")
	if len(entries) != p.NumStarts {
		s.fatalf("plan: got %v, want %s", *p, want)
	}
	for i, e := range entries {
		name, delay, hasDelay := strings.Cut(e, "@")
		st := p.Starts[i]
		if st.Backend != s.backend(name) || (hasDelay && st.Delay != s.dur(delay)) {
			s.fatalf("plan: got %v, want %s", *p, want)
		}
	}
}

func joinBackends(bs []Backend) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = b.String()
	}
	return strings.Join(parts, ",")
}
