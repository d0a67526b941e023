package watchdog

// TestScenarios runs every testdata/*.txt script against a Machine with a
// fake clock. A script is a list of lines; blank lines and lines starting
// with # are ignored. Double quotes group words into one argument.
//
// Setup and time:
//
//	config key=value ...        new machine: DefaultConfig with Config.Set
//	                            keys changed; the clock starts at T0. A bad
//	                            config is kept for `expect error~...`.
//	                            Without it, the first command makes a
//	                            default machine.
//	tick 40ms                   advance the clock, then step a Tick
//	tick 3s every 250ms         the same, one Tick every 250ms
//
// Events (each one Step at the current time):
//
//	result primary ok [5ms]     a RunResult: ok | deadline | error | nan |
//	                            inf | range, optional latency (default 5ms,
//	                            the deadline for `deadline`)
//	result primary ok 5ms x10 every 100ms
//	                            ten of them, advancing 100ms before each
//	canary primary ok 5ms x5 every 500ms
//	                            the same with Canary set
//	request primary=nan shadow=nan degraded=ok:8ms [xN] [every <dur>]
//	                            one RequestResult: the runs of the backends
//	                            named, in the order given, each
//	                            <backend>=<outcome>[:<latency>] as for
//	                            `result`; repeats as for `result`
//	health ok | gpu_lost | xid=79 | xid_warn=13 | ecc | throttled | temp=96
//	                            one HealthSample; flags combine
//	agree | diverge [distance]  a Comparison of primary and shadow
//	vote agree | vote inconclusive | vote outlier=primary
//	cmd force-out primary | cmd clear primary | cmd policy warm
//
// Expectations (of the state after the last step):
//
//	expect state(primary)=failed reason(primary)~"deadline"
//	expect plan=primary@0,shadow@0,degraded@20.5ms   Starts in order;
//	                            @delay optional; plan=none under MRM
//	expect prefer=primary,shadow,degraded active=primary policy=hot
//	expect compare=true vote=false mrm=false delay(shadow)=12ms
//	expect switches=2 failovers=1 failbacks=1 transitions=4 deferred=0
//	       divergences=1 outvoted=1 inconclusive=0 mrm_entries=1
//	       request_faults=1
//	expect plan_reason~"no usable backend" estimate(primary)=8ms
//	expect error~"MissThreshold"
//
// Transitions, canaries and alerts of every step collect in pending lists;
// these consume from them:
//
//	expect transition primary healthy->suspect [reason~"deadline"]
//	expect canary=primary       one canary for primary is pending
//	expect alert failover[~"primary -> shadow"]
//	expect no-transition | no-canary | no-alert    nothing pending
//	drain                       forget everything pending
//	print                       log the machine's status

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario files in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s := &scenario{t: t, file: f, now: t0}
			for i, line := range strings.Split(string(data), "\n") {
				s.line = i + 1
				line = strings.TrimSpace(line)
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				s.run(tokenize(line))
			}
		})
	}
}

type scenario struct {
	t    *testing.T
	file string
	line int

	m   *Machine
	err error // from config
	now time.Time

	transitions []Transition
	canaries    []Canary
	alerts      []Alert
}

func (s *scenario) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s\n%s", s.file, s.line, fmt.Sprintf(format, args...), s.dump())
}

func (s *scenario) dump() string {
	if s.m == nil {
		return "  (no machine)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  now T0+%v plan %v\n", s.now.Sub(t0), s.m.Plan())
	for i := Primary; i < NumBackends; i++ {
		fmt.Fprintf(&b, "  %-8s %-9s %s\n", i, s.m.State(i), s.m.Reason(i))
	}
	fmt.Fprintf(&b, "  counters %+v\n", s.m.Counters())
	for _, tr := range s.transitions {
		fmt.Fprintf(&b, "  pending transition %v\n", tr)
	}
	for _, c := range s.canaries {
		fmt.Fprintf(&b, "  pending canary %v\n", c.Backend)
	}
	for _, a := range s.alerts {
		fmt.Fprintf(&b, "  pending alert %v\n", a)
	}
	return b.String()
}

// tokenize splits on spaces, keeping double-quoted runs together (without
// the quotes).
func tokenize(line string) []string {
	var toks []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote, have = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if have {
				toks = append(toks, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		toks = append(toks, cur.String())
	}
	return toks
}

func (s *scenario) machine() *Machine {
	s.t.Helper()
	if s.m == nil {
		if s.err != nil {
			s.fatalf("no machine: config failed: %v", s.err)
		}
		m, err := New(DefaultConfig())
		if err != nil {
			s.fatalf("New(DefaultConfig()): %v", err)
		}
		s.m = m
	}
	return s.m
}

func (s *scenario) step(ev Event) {
	r := s.machine().Step(s.now, ev)
	s.transitions = append(s.transitions, r.Transitions...)
	s.canaries = append(s.canaries, r.Canaries...)
	s.alerts = append(s.alerts, r.Alerts...)
	if r.MRM != r.Plan.MRM {
		s.fatalf("Ready.MRM %v != Plan.MRM %v", r.MRM, r.Plan.MRM)
	}
	if r.Plan != s.m.Plan() {
		s.fatalf("Ready.Plan differs from Machine.Plan()")
	}
}

func (s *scenario) run(tok []string) {
	s.t.Helper()
	switch tok[0] {
	case "config":
		s.config(tok[1:])
	case "tick":
		s.tick(tok[1:])
	case "result", "canary":
		s.result(tok[0] == "canary", tok[1:])
	case "request":
		s.request(tok[1:])
	case "health":
		s.health(tok[1:])
	case "agree":
		s.step(Comparison{})
	case "diverge":
		c := Comparison{Diverged: true, Distance: 1}
		if len(tok) > 1 {
			c.Distance = s.float(tok[1])
		}
		s.step(c)
	case "vote":
		s.vote(tok[1:])
	case "cmd":
		s.command(tok[1:])
	case "expect":
		s.expect(tok[1:])
	case "drain":
		s.transitions, s.canaries, s.alerts = nil, nil, nil
	case "print":
		s.t.Logf("%s:%d:\n%s", s.file, s.line, s.dump())
	default:
		s.fatalf("unknown command %q", tok[0])
	}
}

func (s *scenario) config(args []string) {
	cfg := DefaultConfig()
	s.m, s.err, s.now = nil, nil, t0
	s.transitions, s.canaries, s.alerts = nil, nil, nil
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			s.fatalf("config: want key=value, got %q", kv)
		}
		if err := cfg.Set(k, v); err != nil {
			s.err = err
			return
		}
	}
	s.m, s.err = New(cfg)
}

func (s *scenario) tick(args []string) {
	if len(args) != 1 && !(len(args) == 3 && args[1] == "every") {
		s.fatalf("usage: tick <dur> [every <dur>]")
	}
	total := s.dur(args[0])
	every := total
	if len(args) == 3 {
		every = s.dur(args[2])
	}
	if every <= 0 {
		s.fatalf("tick: non-positive step")
	}
	for done := time.Duration(0); done+every <= total; done += every {
		s.now = s.now.Add(every)
		s.step(Tick{})
	}
}

func (s *scenario) result(canary bool, args []string) {
	if len(args) < 2 {
		s.fatalf("usage: result <backend> <outcome> [latency] [xN] [every <dur>]")
	}
	r := s.runResult(args[0], args[1])
	r.Canary = canary
	rest := s.repeat(args[2:], func(a string) bool {
		r.Latency = s.dur(a)
		return true
	})
	s.stepN(r, rest)
}

// runResult makes the RunResult of backend name with an outcome (ok,
// deadline, error, nan, inf, range) and the default latency.
func (s *scenario) runResult(name, outcome string) RunResult {
	r := RunResult{Backend: s.backend(name), Latency: 5 * time.Millisecond}
	switch outcome {
	case "ok":
	case "deadline":
		r.Err, r.Latency = RunDeadline, s.machine().Config().Deadline
	case "error":
		r.Err = RunFailed
	case "nan":
		r.Invalid = InvalidNaN
	case "inf":
		r.Invalid = InvalidInf
	case "range":
		r.Invalid = InvalidRange
	default:
		s.fatalf("unknown outcome %q", outcome)
	}
	return r
}

// repeat parses the trailing [xN] [every <dur>] of an event line; other
// arguments go to arg, which reports whether it took them.
type repetition struct {
	n     int
	every time.Duration
}

func (s *scenario) repeat(args []string, arg func(string) bool) repetition {
	rep := repetition{n: 1}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "every" && i+1 < len(args):
			rep.every = s.dur(args[i+1])
			i++
		case strings.HasPrefix(a, "x"):
			v, err := strconv.Atoi(a[1:])
			if err != nil || v < 1 {
				s.fatalf("bad repeat %q", a)
			}
			rep.n = v
		default:
			if !arg(a) {
				s.fatalf("unexpected argument %q", a)
			}
		}
	}
	return rep
}

// stepN steps ev rep.n times, advancing the clock by rep.every before each.
func (s *scenario) stepN(ev Event, rep repetition) {
	for range rep.n {
		s.now = s.now.Add(rep.every)
		s.step(ev)
	}
}

func (s *scenario) request(args []string) {
	var q RequestResult
	rest := s.repeat(args, func(a string) bool {
		name, v, ok := strings.Cut(a, "=")
		if !ok {
			return false
		}
		outcome, lat, hasLat := strings.Cut(v, ":")
		r := s.runResult(name, outcome)
		if hasLat {
			r.Latency = s.dur(lat)
		}
		if q.NumRuns == NumBackends {
			s.fatalf("request: more than %d runs", NumBackends)
		}
		q.Runs[q.NumRuns] = r
		q.NumRuns++
		return true
	})
	if q.NumRuns == 0 {
		s.fatalf("usage: request <backend>=<outcome>[:<latency>] ... [xN] [every <dur>]")
	}
	s.stepN(q, rest)
}

func (s *scenario) health(args []string) {
	var h HealthSample
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "ok":
		case "gpu_lost":
			h.GPULost = true
		case "xid":
			h.Xid, h.XidFatal = uint32(s.float(v)), true
		case "xid_warn":
			h.Xid = uint32(s.float(v))
		case "ecc":
			h.ECCUncorrected = true
		case "throttled":
			h.Throttled = true
		case "temp":
			h.TemperatureC = s.float(v)
		default:
			s.fatalf("unknown health flag %q", a)
		}
	}
	s.step(h)
}

func (s *scenario) vote(args []string) {
	if len(args) != 1 {
		s.fatalf("usage: vote agree|inconclusive|outlier=<backend>")
	}
	switch k, v, _ := strings.Cut(args[0], "="); k {
	case "agree":
		s.step(Vote{Outcome: VoteAgree})
	case "inconclusive":
		s.step(Vote{Outcome: VoteInconclusive})
	case "outlier":
		s.step(Vote{Outcome: VoteOutlier, Outlier: s.backend(v)})
	default:
		s.fatalf("unknown vote %q", args[0])
	}
}

func (s *scenario) command(args []string) {
	if len(args) != 2 {
		s.fatalf("usage: cmd force-out|clear <backend> | cmd policy <policy>")
	}
	switch args[0] {
	case "force-out":
		s.step(Command{Op: CmdForceOut, Backend: s.backend(args[1])})
	case "clear":
		s.step(Command{Op: CmdClear, Backend: s.backend(args[1])})
	case "policy":
		p, err := ParsePolicy(args[1])
		if err != nil {
			s.fatalf("%v", err)
		}
		s.step(Command{Op: CmdSetPolicy, Policy: p})
	default:
		s.fatalf("unknown command %q", args[0])
	}
}

func (s *scenario) backend(v string) Backend {
	b, err := ParseBackend(v)
	if err != nil {
		s.fatalf("%v", err)
	}
	return b
}

func (s *scenario) dur(v string) time.Duration {
	if v == "0" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fatalf("%v", err)
	}
	return d
}

func (s *scenario) float(v string) float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		s.fatalf("%v", err)
	}
	return f
}
