package drill

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const goodYAML = `
name: primary-hang
description: The primary's native call never returns.
load: {rate_hz: 30, deadline: 33ms}
phases:
  - {name: baseline, duration: 2s}
  - {name: fault, duration: 3s, fault: {kind: hang, backend: primary}}
  - {name: recovery, duration: 10s}
expect: {max_detection: 150ms, max_failover: 100ms, max_back_to_primary: 8s, max_missed: 0}
`

func TestParseGood(t *testing.T) {
	s, err := Parse([]byte(goodYAML), "drills/primary-hang.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Scenario{
		Name:        "primary-hang",
		Description: "The primary's native call never returns.",
		Load:        Load{RateHz: 30, Deadline: 33 * time.Millisecond},
		Phases: []Phase{
			{Name: "baseline", Duration: 2 * time.Second},
			{Name: "fault", Duration: 3 * time.Second, Fault: &Fault{Kind: FaultHang, Backend: "primary"}},
			{Name: "recovery", Duration: 10 * time.Second},
		},
		Expect: Expect{MaxDetection: 150 * time.Millisecond, MaxFailover: 100 * time.Millisecond, MaxBackToPrimary: 8 * time.Second},
		Source: "drills/primary-hang.yaml",
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
	if d := s.Duration(); d != 15*time.Second {
		t.Errorf("Duration = %v", d)
	}
}

// TestParseErrors: each bad file is refused with an error naming the
// source, the field and the problem.
func TestParseErrors(t *testing.T) {
	const src = "drills/x.yaml"
	base := func(phases, expect string) string {
		if expect == "" {
			expect = "{max_missed: 0}"
		}
		return "name: x\nload: {rate_hz: 30, deadline: 33ms}\nphases:\n" + phases + "\nexpect: " + expect + "\n"
	}
	quiet := "  - {name: a, duration: 1s}"
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"drills/x.yaml: empty scenario"}},
		{"misspelt key", "name: x\nlaod: {rate_hz: 30}\n", []string{`drills/x.yaml: line 2: unknown key "laod"`}},
		{"integer duration", "name: x\nload: {rate_hz: 30, deadline: 33}\n", []string{"drills/x.yaml: line 2:", "duration such as 33ms"}},
		{"two documents", base(quiet, "") + "---\nname: y\n", []string{"more than one YAML document"}},
		{"bad name", strings.Replace(base(quiet, ""), "name: x", "name: Primary_Hang", 1), []string{`drills/x.yaml: name: "Primary_Hang" may hold only`}},
		{"long name", strings.Replace(base(quiet, ""), "name: x", "name: "+strings.Repeat("a", 41), 1), []string{"name:", "longer than 40"}},
		{"no name", strings.Replace(base(quiet, ""), "name: x", "description: d", 1), []string{"drills/x.yaml: name: missing"}},
		{"rate zero", strings.Replace(base(quiet, ""), "rate_hz: 30", "rate_hz: 0", 1), []string{"load.rate_hz: 0 is not in (0, 200]"}},
		{"rate high", strings.Replace(base(quiet, ""), "rate_hz: 30", "rate_hz: 201", 1), []string{"load.rate_hz: 201"}},
		{"deadline short", strings.Replace(base(quiet, ""), "33ms", "500us", 1), []string{"load.deadline: 500µs is not in [1ms, 10s]"}},
		{"deadline long", strings.Replace(base(quiet, ""), "33ms", "11s", 1), []string{"load.deadline: 11s"}},
		{"no phases", "name: x\nload: {rate_hz: 30, deadline: 33ms}\n", []string{"phases: 0 phases: want 1 to 20"}},
		{"too many phases", base(strings.Repeat("  - {name: a, duration: 1s}\n", 21), ""), []string{"phases: 21 phases"}},
		{"duplicate phase", base("  - {name: a, duration: 1s}\n  - {name: a, duration: 1s}", ""), []string{`phases[1].name: "a" is also phases[0]'s name`}},
		{"short phase", base("  - {name: a, duration: 99ms}", ""), []string{"phases[0].duration: 99ms is not in [100ms, 10m0s]"}},
		{"too long", base("  - {name: a, duration: 9m}\n  - {name: b, duration: 7m}", ""), []string{"phases: 16m0s in all: at most 15m0s"}},
		{"unknown fault", base("  - {name: a, duration: 1s, fault: {kind: melt}}", ""), []string{`phases[0].fault.kind: "melt" is not a drill fault (want hang,`}},
		{"bad backend", base("  - {name: a, duration: 1s}\n  - {name: b, duration: 1s, fault: {kind: hang, backend: gpu}}", ""), []string{`drills/x.yaml: phases[1].fault.backend: "gpu" is not primary, shadow or degraded`}},
		{"no backend", base("  - {name: a, duration: 1s, fault: {kind: error}}", ""), []string{"phases[0].fault.backend: missing: the error fault needs"}},
		{"degraded wedge", base("  - {name: a, duration: 1s, fault: {kind: wedge, backend: degraded}}", ""), []string{"phases[0].fault.backend: wedge needs a backend in a worker process"}},
		{"backend on link-cut", base("  - {name: a, duration: 1s, fault: {kind: link-cut, backend: primary}}", ""), []string{"phases[0].fault.backend: the link-cut fault acts on no backend"}},
		{"latency zero", base("  - {name: a, duration: 1s, fault: {kind: latency, backend: primary}}", ""), []string{"phases[0].fault.latency: the latency fault needs a positive latency"}},
		{"latency on hang", base("  - {name: a, duration: 1s, fault: {kind: hang, backend: primary, latency: 5ms}}", ""), []string{"phases[0].fault.latency: only the latency fault"}},
		{"probability", base("  - {name: a, duration: 1s, fault: {kind: error, backend: primary, probability: 1.5}}", ""), []string{"phases[0].fault.probability: 1.5 is not in [0, 1]"}},
		{"negative expect", base(quiet, "{max_missed: -1, max_rpo: -1s}"), []string{"expect.max_rpo: must not be negative", "expect.max_missed: must not be negative"}},
		{"availability", base(quiet, "{min_availability: 1.2}"), []string{"expect.min_availability: 1.2 is not in [0, 1]"}},
		{"detection without rung fault", base("  - {name: a, duration: 1s, fault: {kind: link-cut}}", "{max_detection: 1s}"), []string{"expect.max_detection: no phase has a fault on a rung"}},
		{"drain without fault", base(quiet, "{max_drain: 1s}"), []string{"expect.max_drain: no phase has a fault"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), src)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestFaultNames(t *testing.T) {
	for _, tc := range []struct {
		f         Fault
		want      string
		inference bool
		rungs     []string
	}{
		{Fault{Kind: FaultHang, Backend: "primary"}, "primary hang", true, []string{"primary"}},
		{Fault{Kind: FaultLatency, Backend: "shadow", Latency: 66 * time.Millisecond, Probability: 0.5}, "shadow latency 66ms p=0.5", true, []string{"shadow"}},
		{Fault{Kind: FaultError, Backend: "primary", Probability: 1}, "primary error", true, []string{"primary"}},
		{Fault{Kind: FaultLinkCut}, "link-cut", false, nil},
		{Fault{Kind: FaultGPULost}, "gpu-lost", false, []string{"primary", "shadow"}},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
		if got := tc.f.Kind.Inference(); got != tc.inference {
			t.Errorf("%s: Inference() = %v", tc.want, got)
		}
		if got := tc.f.Rungs(); !reflect.DeepEqual(got, tc.rungs) {
			t.Errorf("%s: Rungs() = %v", tc.want, got)
		}
	}
	for _, k := range faultKinds {
		if !k.Known() {
			t.Errorf("%s not Known", k)
		}
	}
	if FaultKind("gpu").Known() || FaultKind("gpu").Inference() {
		t.Error("gpu is a fault")
	}
}

// FuzzParse: Parse never panics, and a scenario it accepts marshals back
// to YAML that parses to the same value.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodYAML))
	f.Add([]byte("name: x\nload: {rate_hz: 1e-300, deadline: 1ms}\nphases: [{name: a, duration: 100ms, fault: {kind: latency, backend: shadow, latency: 1ns, probability: 0.3}}]\nexpect: {min_availability: 0.99, max_lost: 18446744073709551615}\n"))
	f.Add([]byte("name: &a x\nload: *a\n"))
	f.Add([]byte("[1, 2]"))
	for _, s := range Standard() {
		b, err := yaml.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatalf("marshal %+v: %v", s, err)
		}
		again, err := Parse(out, "fuzz.yaml")
		if err != nil {
			t.Fatalf("re-parse of\n%s\n: %v", out, err)
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip changed the scenario:\n%+v\n%+v", s, again)
		}
	})
}
