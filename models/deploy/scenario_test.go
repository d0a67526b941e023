package deploy

// TestScenarios runs every testdata/*.txt script against a Deployment with
// a fake clock. A script is a list of lines; blank lines and lines
// starting with # are ignored. Double quotes group words into one
// argument. After every step the invariants of invariants_test.go are
// checked.
//
// Setup and time:
//
//	config key=value ...        DefaultConfig with Config.Set keys changed,
//	                            for the next deploy; the clock goes back to
//	                            T0. A bad config is kept for
//	                            `expect error~...`.
//	deploy [key=value|flag ...] New at the current time: name=pilot
//	                            version=2 role=primary hash=<n> (the
//	                            64-digit hex of n; default the version)
//	                            issued=<dur> (T0+dur; default now) id=...,
//	                            flags parked_only, skip_trial. A refused
//	                            spec is kept for `expect error~...`.
//	tick 40s [every 5s]         advance the clock, then step a Tick (one
//	                            every 5s)
//	after 1m <event line>       advance the clock, then step the event
//
// Events (each one Step at the current time):
//
//	progress 10/100             DownloadProgress
//	download done | download failed [reason]
//	verify ok [abs=0.01] [rel=0.1] | verify refused [reason]
//	                            VerifyDone (with a manifest tolerance when
//	                            abs or rel is given) | VerifyRefused
//	install done | install failed [reason] | install refused [reason]
//	trial started | trial failed [reason]    TrialStarted | TrialStartFailed
//	sample <kind> [lat=5ms] [budget=33ms] [xN] [every <dur>]
//	                            TrialSample: ok (answered, within), diverge
//	                            (answered, outside), slow (answered, within,
//	                            lat 30ms), error, crash, hang, nan; N of
//	                            them, advancing <dur> before each
//	promote done | promote failed [reason] [swapped]
//	served <n> [xN] [every <dur>]            Served
//	watchdog failed [reason] | watchdog suspect [reason]
//	commit done | commit failed [reason]
//	rollback done | rollback failed [reason]
//	cmd abort [reason] | cmd rollback [reason]
//	newer [version=3] [hash=<n>] [issued=<dur>] [role=...]
//	                            Newer (defaults: the next version, its
//	                            hash, issued a minute after this one)
//	parked | moving             Motion
//	restart slot=<none|candidate|active|committed> [crash]
//	                            Save, encode and decode, Restore, then
//	                            Restarted (Clean unless crash); with
//	                            `restart only` Restore without Restarted
//	event bogus | event nil     an event of an unknown type, a nil one
//	event restarted             Restarted, to a deployment not restored
//
// Expectations (of the deployment after the last step):
//
//	expect state=trial held=false reason~"text" deadline=+2h (from now)
//	       compared=500 divergent=0 slow=0 errors=0 trial_passed=true
//	       requests=1000 suspects=0 gate_passed=true crashes=1
//	       quarantine~"text" tolerance=0.05/0 parked_only=true
//	       skip_trial=false done=true have=10
//	expect error~"text"         of the last config or deploy
//
// Actions, reports and rejections of the steps since the last expect line
// collect in pending lists (the first line that steps after an expect
// line starts them afresh); these consume from them:
//
//	expect action <name>[~text] an action whose String starts with name and
//	                            contains text ("rollback~health gate")
//	expect report <from>-><to> [reason~text]
//	                            (one expect line may hold several of
//	                            these, and key=value checks)
//	expect rejected~text        a rejection containing text
//	expect no-action | no-report | no-rejected   nothing pending
//	drain                       forget everything pending
//	print                       log the deployment's status

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

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
			s := &scenario{t: t, file: f, now: t0, cfg: DefaultConfig()}
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

	cfg Config
	err error // of the last config or deploy
	d   *Deployment
	inv *invariants
	now time.Time

	actions  []Action
	reports  []Transition
	rejected []error
	expected bool // the last line was an expect: the next event starts afresh
}

func (s *scenario) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s\n%s", s.file, s.line, fmt.Sprintf(format, args...), s.dump())
}

func (s *scenario) dump() string {
	if s.d == nil {
		return "  (no deployment)"
	}
	var b strings.Builder
	st := s.d.Status()
	deadline := "none"
	if !st.Deadline.IsZero() {
		deadline = st.Deadline.Sub(s.now).String()
	}
	fmt.Fprintf(&b, "  now T0+%v state %s held %v reason %q deadline %s\n", s.now.Sub(t0), st.State, st.Held, st.Reason, deadline)
	fmt.Fprintf(&b, "  trial %+v\n  gate %+v crashes %d quarantine %q\n", st.Trial, st.Gate, st.Crashes, st.Quarantine)
	for _, a := range s.actions {
		fmt.Fprintf(&b, "  pending action %v\n", a)
	}
	for _, r := range s.reports {
		fmt.Fprintf(&b, "  pending report %v\n", r)
	}
	for _, e := range s.rejected {
		fmt.Fprintf(&b, "  pending rejected %v\n", e)
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

func (s *scenario) deployment() *Deployment {
	s.t.Helper()
	if s.d == nil {
		s.fatalf("no deployment: deploy first")
	}
	return s.d
}

// collect files a Ready's outputs in the pending lists.
func (s *scenario) collect(r Ready) {
	for _, a := range r.Actions {
		if rep, ok := a.(Report); ok {
			s.reports = append(s.reports, rep.Transition)
		} else {
			s.actions = append(s.actions, a)
		}
	}
	if r.Rejected != nil {
		s.rejected = append(s.rejected, r.Rejected)
	}
}

func (s *scenario) step(ev Event) {
	s.t.Helper()
	d := s.deployment()
	r := s.inv.step(s.t, d, s.now, ev)
	s.collect(r)
}

func (s *scenario) run(tok []string) {
	s.t.Helper()
	switch tok[0] {
	case "expect", "drain", "print", "config":
	default:
		if s.expected {
			s.actions, s.reports, s.rejected = nil, nil, nil
		}
	}
	s.expected = tok[0] == "expect" || tok[0] == "print"
	switch tok[0] {
	case "config":
		s.config(tok[1:])
	case "deploy":
		s.deploy(tok[1:])
	case "tick":
		s.tick(tok[1:])
	case "expect":
		s.expect(tok[1:])
	case "drain":
		s.actions, s.reports, s.rejected = nil, nil, nil
	case "print":
		s.t.Logf("%s:%d:\n%s", s.file, s.line, s.dump())
	case "restart":
		s.restart(tok[1:])
	case "after":
		if len(tok) < 3 {
			s.fatalf("usage: after <dur> <event line>")
		}
		s.now = s.now.Add(s.dur(tok[1]))
		s.event(tok[2:])
	default:
		s.event(tok)
	}
}

func (s *scenario) config(args []string) {
	s.cfg, s.err, s.d, s.now = DefaultConfig(), nil, nil, t0
	s.actions, s.reports, s.rejected = nil, nil, nil
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			s.fatalf("config: want key=value, got %q", kv)
		}
		if err := s.cfg.Set(k, v); err != nil {
			s.err = err
			return
		}
	}
	s.err = s.cfg.Validate()
}

func (s *scenario) deploy(args []string) {
	spec := Spec{Role: "primary", Name: "pilot", Version: 2, Issued: s.now}
	hash := ""
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "name":
			spec.Name = v
		case "version":
			spec.Version = uint64(s.int(v))
		case "role":
			spec.Role = v
		case "hash":
			hash = v
		case "issued":
			spec.Issued = t0.Add(s.dur(v))
		case "id":
			spec.ID = v
		case "parked_only":
			spec.ParkedOnly = true
		case "skip_trial":
			spec.SkipTrial = true
		default:
			s.fatalf("deploy: unknown argument %q", a)
		}
	}
	spec.Hash = s.hash(hash, spec.Version)
	s.actions, s.reports, s.rejected = nil, nil, nil
	d, r, err := New(s.cfg, spec, s.now)
	s.err = err
	if err != nil {
		s.d = nil
		return
	}
	s.d, s.inv = d, newInvariants(d)
	s.inv.checkNew(s.t, d, s.now, r)
	s.collect(r)
}

// hash turns "" (use n), a number or 64 hex digits into a bundle hash.
func (s *scenario) hash(v string, n uint64) string {
	if len(v) == 64 || v == "bad" {
		return v
	}
	if v != "" {
		n = uint64(s.int(v))
	}
	return fmt.Sprintf("%064x", n)
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

// restart saves the deployment, encodes and decodes it, restores it and
// steps Restarted, as a daemon does when it starts.
func (s *scenario) restart(args []string) {
	d := s.deployment()
	r := Restarted{Clean: true}
	only := false
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "slot":
			r.Slot = s.slot(v)
		case "crash":
			r.Clean = false
		case "only":
			only = true
		default:
			s.fatalf("restart: unknown argument %q", a)
		}
	}
	b, err := d.Save().Encode()
	if err != nil {
		s.fatalf("encode: %v", err)
	}
	saved, err := DecodeSaved(b)
	if err != nil {
		s.fatalf("decode: %v\n%s", err, b)
	}
	nd, err := Restore(s.cfg, saved)
	if err != nil {
		s.fatalf("restore: %v", err)
	}
	s.d = nd
	s.inv.restored(nd)
	if !only {
		s.step(r)
	}
}

func (s *scenario) slot(v string) SlotPosition {
	for p := SlotNone; p <= SlotCommitted; p++ {
		if p.String() == v {
			return p
		}
	}
	s.fatalf("unknown slot position %q", v)
	return 0
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

func (s *scenario) int(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		s.fatalf("%v", err)
	}
	return n
}

func (s *scenario) float(v string) float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		s.fatalf("%v", err)
	}
	return f
}
