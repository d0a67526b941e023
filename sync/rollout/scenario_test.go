package rollout

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// The scenario language. A scenario is a list of lines, each a step or a
// check, run in order against one rollout on a fake timeline:
//
//	spec n=20 waves=5,25,50,100% max=10% min=5 [resend=1m] [timeout=4h] [id=r1]
//	at 90s                          the time is t0+90s from here on
//	plan deploy v01 v02-v05         Plan must return model-deploy to exactly these
//	plan rollback v01               ... model-rollback to exactly these
//	plan -                          ... nothing
//	ack v01-v05 ok|none|busy|rejected|bad_args|failed|unsafe_while_moving
//	                                answer each vehicle's latest model-deploy
//	rack v01 ok|none|...            answer its latest model-rollback
//	report v01 trial [own|foreign|none]
//	                                a report on the deployment the rollout
//	                                started (own), another one, or none
//	pause | resume | abort [rollback]   (append "fails" to expect a refusal)
//	status halted                   the rollout's status
//	outcome v06-v20 waiting         each vehicle's outcome
//	sent v01 2                      model-deploy envelopes sent to v01
//	wave 2                          the current wave
//	count committed=4 failed=1      the counts over all vehicles
//	log breaker_tripped wave=2      the log holds such an entry
//	nolog wave_started wave=3       it holds none
//	finished yes|no
//	reload                          Encode, Decode: the stored form carries all
//
// Vehicles are v01, v02, ...; vA-vB is every one from A to B.

var t0 = time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)

const testHash = "4f2c1a0b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180706f5e4d3c2b1a090"

type scenario struct {
	t      *testing.T
	r      *Rollout
	now    time.Time
	line   int
	text   string
	report int // makes each report's time distinct
}

func (s *scenario) fail(format string, a ...any) {
	s.t.Helper()
	s.t.Fatalf("line %d %q: %s", s.line, s.text, fmt.Sprintf(format, a...))
}

func vehicleName(i int) string { return fmt.Sprintf("v%02d", i) }

// vehicles expands v01 v03-v05 into names.
func (s *scenario) vehicles(words []string) []string {
	var out []string
	for _, w := range words {
		a, b, isRange := strings.Cut(w, "-")
		if !isRange {
			out = append(out, w)
			continue
		}
		from, err1 := strconv.Atoi(strings.TrimPrefix(a, "v"))
		to, err2 := strconv.Atoi(strings.TrimPrefix(b, "v"))
		if err1 != nil || err2 != nil || to < from {
			s.fail("bad range %q", w)
		}
		for i := from; i <= to; i++ {
			out = append(out, vehicleName(i))
		}
	}
	return out
}

func (s *scenario) spec(words []string) {
	kv := map[string]string{"resend": "1m", "timeout": "4h", "id": "r1"}
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		kv[k] = v
	}
	n, _ := strconv.Atoi(kv["n"])
	var vs []string
	for i := 1; i <= n; i++ {
		vs = append(vs, vehicleName(i))
	}
	waves, err := ParseWaves(kv["waves"])
	if err != nil {
		s.fail("%v", err)
	}
	maxF, err := ParsePercent(kv["max"])
	if err != nil {
		s.fail("%v", err)
	}
	minV, _ := strconv.Atoi(kv["min"])
	resend, _ := time.ParseDuration(kv["resend"])
	timeout, _ := time.ParseDuration(kv["timeout"])
	s.r, err = New(Spec{ID: kv["id"], Bundle: Bundle{Hash: testHash, Name: "pilotnet", Version: 2}, Role: "primary",
		Vehicles: vs, Waves: waves, MaxFailures: maxF, MinVehicles: minV, ResendAfter: resend, VehicleTimeout: timeout}, s.now)
	if err != nil {
		s.fail("New: %v", err)
	}
}

func (s *scenario) vehicle(id string) *Vehicle {
	v := s.r.Vehicle(id)
	if v == nil {
		s.fail("no vehicle %s", id)
	}
	return v
}

func parseCode(w string) command.Code {
	if w == "none" {
		return ""
	}
	return command.Code(w)
}

func (s *scenario) plan(words []string) {
	acts := s.r.Plan(s.now)
	want := map[command.Command][]string{}
	if len(words) > 0 && words[0] != "-" {
		c := deploywire.Deploy
		if words[0] == "rollback" {
			c = deploywire.Rollback
		}
		want[c] = s.vehicles(words[1:])
	}
	got := map[command.Command][]string{}
	for _, a := range acts {
		got[a.Command] = append(got[a.Command], a.Vehicle)
		v := s.vehicle(a.Vehicle)
		n := v.Deploy.N
		if a.Command == deploywire.Rollback {
			n = v.Rollback.N
		}
		if a.CorrelationID != CorrelationID(s.r.Spec.ID, a.Vehicle, a.Command, n) {
			s.fail("action %+v: correlation id, want envelope %d's", a, n)
		}
		s.checkArgs(a)
	}
	for c := range got {
		slices.Sort(got[c])
	}
	for _, c := range []command.Command{deploywire.Deploy, deploywire.Rollback} {
		if !slices.Equal(got[c], want[c]) {
			s.fail("%s to %v, want %v", c, got[c], want[c])
		}
	}
}

// checkArgs: every action carries arguments the vehicle accepts.
func (s *scenario) checkArgs(a Action) {
	if a.Command == deploywire.Deploy {
		d, err := deploywire.ParseDeployArgs(a.Args)
		if err != nil || d.BundleHash != testHash || d.Name != "pilotnet" || d.Version != 2 || d.Role != "primary" || d.Rollout != s.r.Spec.ID {
			s.fail("model-deploy args %v: %+v %v", a.Args, d, err)
		}
		return
	}
	d, err := deploywire.ParseRollbackArgs(a.Args)
	if err != nil || d.BundleHash != testHash || d.Role != "primary" {
		s.fail("model-rollback args %v: %v", a.Args, err)
	}
}

func (s *scenario) ack(words []string, c command.Command) {
	code := parseCode(words[len(words)-1])
	for _, id := range s.vehicles(words[:len(words)-1]) {
		v := s.vehicle(id)
		n := v.Deploy.N
		if c == deploywire.Rollback {
			n = v.Rollback.N
		}
		if !s.r.Acknowledge(s.now, id, CorrelationID(s.r.Spec.ID, id, c, n), Ack{Code: code, Message: "test"}) {
			s.fail("the answer of %s was not counted", id)
		}
	}
}

func (s *scenario) reportOn(words []string) {
	whose := "own"
	if w := words[len(words)-1]; w == "own" || w == "foreign" || w == "none" {
		whose, words = w, words[:len(words)-1]
	}
	state := deploywire.State(words[len(words)-1])
	for _, id := range s.vehicles(words[:len(words)-1]) {
		s.report++
		rep := deploywire.Report{Vehicle: id, BundleHash: testHash, Role: "primary", State: state,
			Updated: s.now.Add(time.Duration(s.report) * time.Millisecond)}
		switch whose {
		case "own":
			rep.Deployment = CorrelationID(s.r.Spec.ID, id, deploywire.Deploy, max(1, s.vehicle(id).Deploy.N))
		case "foreign":
			rep.Deployment = "r0:" + id + ":deploy-1"
		}
		if state.Failed() {
			rep.Reason = "test " + string(state)
		}
		s.r.Observe(s.now, rep)
	}
}

func (s *scenario) operator(verb string, words []string) {
	expectFail := len(words) > 0 && words[len(words)-1] == "fails"
	if expectFail {
		words = words[:len(words)-1]
	}
	var err error
	switch verb {
	case "pause":
		err = s.r.Pause(s.now, "")
	case "resume":
		err = s.r.Resume(s.now, "")
	case "abort":
		err = s.r.Abort(s.now, len(words) > 0 && words[0] == "rollback", "")
	}
	if (err != nil) != expectFail {
		s.fail("%s: %v", verb, err)
	}
}

func (s *scenario) hasLog(words []string) bool {
	what := What(words[0])
	for _, e := range s.r.Log {
		ok := e.What == what
		for _, w := range words[1:] {
			k, v, _ := strings.Cut(w, "=")
			switch k {
			case "wave":
				ok = ok && strconv.Itoa(e.Wave) == v
			case "vehicle":
				ok = ok && e.Vehicle == v
			case "why":
				ok = ok && strings.Contains(e.Why, strings.ReplaceAll(v, "_", " "))
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (s *scenario) check(verb string, words []string) {
	switch verb {
	case "status":
		if string(s.r.Status) != words[0] {
			s.fail("status %s", s.r.Status)
		}
	case "outcome":
		for _, id := range s.vehicles(words[:len(words)-1]) {
			if o := s.vehicle(id).Outcome; string(o) != words[len(words)-1] {
				s.fail("%s is %s", id, o)
			}
		}
	case "sent":
		if n := s.vehicle(words[0]).Deploy.N; strconv.Itoa(n) != words[1] {
			s.fail("%s was sent %d", words[0], n)
		}
	case "wave":
		if strconv.Itoa(s.r.Current) != words[0] {
			s.fail("wave %d", s.r.Current)
		}
	case "count":
		c := s.r.Count(0)
		got := map[string]int{"waiting": c.Waiting, "sent": c.Sent, "in_progress": c.InProgress, "committed": c.Committed, "failed": c.Failed}
		for _, w := range words {
			k, v, _ := strings.Cut(w, "=")
			if strconv.Itoa(got[k]) != v {
				s.fail("%s=%d (counts %+v)", k, got[k], c)
			}
		}
	case "log":
		if !s.hasLog(words) {
			s.fail("no such entry in the log:\n%s", s.dumpLog())
		}
	case "nolog":
		if s.hasLog(words) {
			s.fail("such an entry is in the log:\n%s", s.dumpLog())
		}
	case "finished":
		if s.r.Finished() != (words[0] == "yes") {
			s.fail("finished %v", s.r.Finished())
		}
	default:
		s.fail("unknown step")
	}
}

func (s *scenario) dumpLog() string {
	var b strings.Builder
	for _, e := range s.r.Log {
		fmt.Fprintf(&b, "  %v wave=%d %s %s: %s\n", e.At.Sub(t0), e.Wave, e.Vehicle, e.What, e.Why)
	}
	return b.String()
}

func runScenario(t *testing.T, script string) *Rollout {
	t.Helper()
	s := &scenario{t: t, now: t0}
	for i, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s.line, s.text = i+1, line
		f := strings.Fields(line)
		verb, words := f[0], f[1:]
		if verb != "spec" && s.r == nil {
			s.fail("no spec yet")
		}
		switch verb {
		case "spec":
			s.spec(words)
		case "at":
			d, err := time.ParseDuration(words[0])
			if err != nil || t0.Add(d).Before(s.now) {
				s.fail("bad time")
			}
			s.now = t0.Add(d)
		case "plan":
			s.plan(words)
		case "ack":
			s.ack(words, deploywire.Deploy)
		case "rack":
			s.ack(words, deploywire.Rollback)
		case "report":
			s.reportOn(words)
		case "pause", "resume", "abort":
			s.operator(verb, words)
		case "reload":
			raw, err := s.r.Encode()
			if err != nil {
				s.fail("%v", err)
			}
			if s.r, err = Decode(raw); err != nil {
				s.fail("%v", err)
			}
		default:
			s.check(verb, words)
		}
	}
	return s.r
}
