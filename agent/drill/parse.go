package drill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits on a scenario, checked by Validate.
const (
	MaxNameLen        = 40
	MaxRateHz         = 200
	MinDeadline       = time.Millisecond
	MaxDeadline       = 10 * time.Second
	MaxPhases         = 20
	MinPhaseDuration  = 100 * time.Millisecond
	MaxPhaseDuration  = 10 * time.Minute
	MaxTotalDuration  = 15 * time.Minute
	MaxDescriptionLen = 2000
)

// Parse reads a scenario file's YAML and validates it. source names the
// file in errors ("drills/x.yaml"); it is kept in Scenario.Source.
// Durations are Go duration strings ("33ms", "5s"); an unknown or
// misspelt key is an error naming its line. A scenario that parses but
// does not validate is returned with Validate's error.
func Parse(data []byte, source string) (Scenario, error) {
	var s Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return Scenario{Source: source}, fmt.Errorf("%s: empty scenario", source)
		}
		return Scenario{Source: source}, fmt.Errorf("%s: %s", source, yamlProblem(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Scenario{Source: source}, fmt.Errorf("%s: more than one YAML document; a scenario file holds one", source)
	}
	s.Source = source
	return s, s.Validate()
}

// fieldNotFound matches yaml's message for an unknown key.
var fieldNotFound = regexp.MustCompile(`field (\S+) not found in type \S+`)

// yamlProblem makes yaml's error read as a problem in the file.
func yamlProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		l = fieldNotFound.ReplaceAllString(l, `unknown key "$1"`)
		l = strings.ReplaceAll(l, "time.Duration", "a duration such as 33ms or 5s")
		lines = append(lines, l)
	}
	return strings.Join(lines, "; ")
}

// slug matches names: lower-case letters, digits and '-', not starting
// with '-'.
var slug = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Validate checks every field and returns all problems found, joined with
// errors.Join, each naming the source and the field's path, e.g.
// `drills/x.yaml: phases[1].fault.backend: "gpu" is not primary, shadow
// or degraded`.
func (s Scenario) Validate() error {
	src := s.Source
	if src == "" {
		src = "drill scenario"
		if s.Name != "" {
			src += " " + s.Name
		}
	}
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", src, path, fmt.Sprintf(format, args...)))
	}
	checkSlug(bad, "name", s.Name)
	if len(s.Description) > MaxDescriptionLen || !utf8.ValidString(s.Description) {
		bad("description", "must be UTF-8 text of at most %d bytes", MaxDescriptionLen)
	}
	if !(s.Load.RateHz > 0 && s.Load.RateHz <= MaxRateHz) {
		bad("load.rate_hz", "%v is not in (0, %d]", s.Load.RateHz, MaxRateHz)
	}
	if s.Load.Deadline < MinDeadline || s.Load.Deadline > MaxDeadline {
		bad("load.deadline", "%v is not in [%v, %v]", s.Load.Deadline, MinDeadline, MaxDeadline)
	}
	validatePhases(bad, s.Phases)
	validateExpect(bad, s)
	return errors.Join(errs...)
}

type badFunc func(path, format string, args ...any)

func checkSlug(bad badFunc, path, name string) {
	switch {
	case name == "":
		bad(path, "missing")
	case len(name) > MaxNameLen:
		bad(path, "%q is longer than %d characters", name, MaxNameLen)
	case !slug.MatchString(name):
		bad(path, "%q may hold only a-z, 0-9 and '-' (not first)", name)
	}
}

func validatePhases(bad badFunc, phases []Phase) {
	if len(phases) < 1 || len(phases) > MaxPhases {
		bad("phases", "%d phases: want 1 to %d", len(phases), MaxPhases)
	}
	seen := make(map[string]int, len(phases))
	var total time.Duration
	for i, p := range phases {
		at := fmt.Sprintf("phases[%d]", i)
		checkSlug(bad, at+".name", p.Name)
		if j, dup := seen[p.Name]; dup && p.Name != "" {
			bad(at+".name", "%q is also phases[%d]'s name", p.Name, j)
		} else {
			seen[p.Name] = i
		}
		if p.Duration < MinPhaseDuration || p.Duration > MaxPhaseDuration {
			bad(at+".duration", "%v is not in [%v, %v]", p.Duration, MinPhaseDuration, MaxPhaseDuration)
		}
		if p.Duration > 0 && total <= math.MaxInt64-p.Duration {
			total += p.Duration
		}
		if p.Fault != nil {
			validateFault(bad, at+".fault", *p.Fault)
		}
	}
	if total > MaxTotalDuration {
		bad("phases", "%v in all: at most %v", total, MaxTotalDuration)
	}
}

func validateFault(bad badFunc, at string, f Fault) {
	if !f.Kind.Known() {
		bad(at+".kind", "%q is not a drill fault (want %s)", f.Kind, strings.Join(faultNames(), ", "))
		return
	}
	if f.Kind.Inference() {
		switch f.Backend {
		case "primary", "shadow":
		case "degraded":
			if f.Kind.Worker() {
				bad(at+".backend", "%s needs a backend in a worker process; the degraded CPU rung never runs in one", f.Kind)
			}
		case "":
			bad(at+".backend", "missing: the %s fault needs primary, shadow or degraded", f.Kind)
		default:
			bad(at+".backend", "%q is not primary, shadow or degraded", f.Backend)
		}
	} else {
		if f.Backend != "" {
			bad(at+".backend", "the %s fault acts on no backend; remove it", f.Kind)
		}
		if f.Probability != 0 {
			bad(at+".probability", "only inference faults take one")
		}
	}
	switch {
	case f.Kind == FaultLatency && f.Latency <= 0:
		bad(at+".latency", "the latency fault needs a positive latency, got %v", f.Latency)
	case f.Kind != FaultLatency && f.Latency != 0:
		bad(at+".latency", "only the latency fault takes one")
	}
	if !(f.Probability >= 0 && f.Probability <= 1) {
		bad(at+".probability", "%v is not in [0, 1]", f.Probability)
	}
}

func validateExpect(bad badFunc, s Scenario) {
	e := s.Expect
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"max_detection", e.MaxDetection},
		{"max_failover", e.MaxFailover},
		{"max_back_to_primary", e.MaxBackToPrimary},
		{"max_rpo", e.MaxRPO},
		{"max_drain", e.MaxDrain},
	} {
		if d.v < 0 {
			bad("expect."+d.key, "must not be negative, got %v", d.v)
		}
	}
	if e.MaxMissed < 0 {
		bad("expect.max_missed", "must not be negative, got %d", e.MaxMissed)
	}
	if !(e.MinAvailability >= 0 && e.MinAvailability <= 1) {
		bad("expect.min_availability", "%v is not in [0, 1]", e.MinAvailability)
	}
	rung, fault := false, false
	for _, p := range s.Phases {
		if p.Fault != nil {
			fault = true
			rung = rung || len(p.Fault.Rungs()) > 0
		}
	}
	if !rung {
		for _, d := range []struct {
			key string
			v   time.Duration
		}{{"max_detection", e.MaxDetection}, {"max_failover", e.MaxFailover}, {"max_back_to_primary", e.MaxBackToPrimary}} {
			if d.v > 0 {
				bad("expect."+d.key, "no phase has a fault on a rung (an inference fault or gpu-lost) to measure it on")
			}
		}
	}
	if !fault && e.MaxDrain > 0 {
		bad("expect.max_drain", "no phase has a fault to measure the drain after")
	}
}

// faultKinds lists every drill fault, in the order docs name them.
var faultKinds = []FaultKind{
	FaultHang, FaultStuck, FaultLatency, FaultError, FaultNaN, FaultWrong,
	FaultCrash, FaultWedge, FaultLeak,
	FaultGPULost, FaultLinkCut, FaultBrokerLoss, FaultStoreFull, FaultCheckpointRestore,
}

func faultNames() []string {
	out := make([]string, len(faultKinds))
	for i, k := range faultKinds {
		out[i] = string(k)
	}
	return out
}

// Known reports whether k is one of the drill faults.
func (k FaultKind) Known() bool {
	for _, f := range faultKinds {
		if k == f {
			return true
		}
	}
	return false
}

// Inference reports whether k is an inference fault, injected into one
// backend (Fault.Backend) as inference.FaultKind of the same name.
func (k FaultKind) Inference() bool {
	switch k {
	case FaultHang, FaultStuck, FaultLatency, FaultError, FaultNaN, FaultWrong,
		FaultCrash, FaultWedge, FaultLeak:
		return true
	}
	return false
}

// Worker reports whether k hits a backend's worker process (crash, wedge,
// leak): the backend must run with isolation: process.
func (k FaultKind) Worker() bool {
	return k == FaultCrash || k == FaultWedge || k == FaultLeak
}

// Rungs are the backends the fault puts out of service, whose detection,
// failover and return the report measures: Backend for an inference
// fault, primary and shadow (the GPU rungs) for gpu-lost, none for the
// others.
func (f Fault) Rungs() []string {
	switch {
	case f.Kind.Inference():
		return []string{f.Backend}
	case f.Kind == FaultGPULost:
		return []string{"primary", "shadow"}
	}
	return nil
}

// String names the fault for people and marks: "primary hang",
// "shadow latency 66ms p=0.5", "link-cut".
func (f Fault) String() string {
	if !f.Kind.Inference() {
		return string(f.Kind)
	}
	s := f.Backend + " " + string(f.Kind)
	if f.Kind == FaultLatency {
		s += " " + f.Latency.String()
	}
	if f.Probability > 0 && f.Probability < 1 && !math.IsNaN(f.Probability) {
		s += fmt.Sprintf(" p=%g", f.Probability)
	}
	return s
}

// Duration is the scenario's planned length, the sum of its phases.
func (s Scenario) Duration() time.Duration {
	var d time.Duration
	for _, p := range s.Phases {
		d += p.Duration
	}
	return d
}
