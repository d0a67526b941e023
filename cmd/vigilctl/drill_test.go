package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
)

// TestDrillArgumentErrors: vigilctl drill refuses what it can without a
// daemon, and names what is wrong — a scenario file's bad field
// included.
func TestDrillArgumentErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nload: {rate_hz: 30, deadline: 33ms}\nphases:\n  - {name: a, duration: 1s, fault: {kind: hnag, backend: primary}}\n"), 0o644)
	cases := map[string][]string{
		"want list, run or report": {"drill"},
		`drill "go"`:               {"drill", "go"},
		"one of them":              {"drill", "run"},
		"phases[0].fault.kind":     {"drill", "run", "--file", bad},
		"no such file":             {"drill", "run", "--file", filepath.Join(dir, "none.yaml")},
		"the report's id":          {"drill", "report"},
		"unexpected argument":      {"drill", "list", "extra"},
	}
	for want, args := range cases {
		_, err := ctl(t, append([]string{"--socket", "/nonexistent/v.sock"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error containing %q", args, err, want)
		}
	}
	// Flags after the name are taken too.
	_, err := ctl(t, "--socket", filepath.Join(dir, "none.sock"), "drill", "run", "primary-hang", "--no-wait")
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("drill run primary-hang --no-wait: %v, want 'not running'", err)
	}
	out, err := ctl(t, "drill", "run", "--help")
	if err == nil || !strings.Contains(out, "-no-wait") || !strings.Contains(out, "-file") {
		t.Errorf("drill run --help: %v\n%s", err, out)
	}
}

// TestDrillReportTable: the summary table has a row per phase and the
// totals, "-" for what was not measured; --html writes the report's page.
func TestDrillReportTable(t *testing.T) {
	rep := &drill.Report{Version: 1, ID: "20261206T030000Z-x", Name: "x", Vehicle: "car-1", Started: time.Now(), Ended: time.Now().Add(4 * time.Second),
		Phases: []drill.PhaseReport{
			{Name: "baseline", Figures: drill.Figures{Requests: 40, OK: 40, DetectionMS: -1, FailoverMS: -1, BackToPrimaryMS: -1, Availability: 1}, Passed: true},
			{Name: "fault", Fault: "primary hang", Figures: drill.Figures{Requests: 40, OK: 39, Missed: 1, NoResult: map[string]int{"DEADLINE_EXCEEDED": 1}, DetectionMS: 61.2, FailoverMS: 24.1, BackToPrimaryMS: -1}, Failures: []string{"1 deadlines missed"}},
		},
		Totals: drill.Figures{Requests: 80, OK: 79, Missed: 1, DetectionMS: 61.2, FailoverMS: 24.1, BackToPrimaryMS: -1}, Failures: []string{"phase fault: 1 deadlines missed"}}
	var b bytes.Buffer
	printReport(&b, rep)
	out := b.String()
	for _, want := range []string{"FAILED", "primary hang", "DEADLINE_EXCEEDED:1", "61.2", "total", "failed: phase fault"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	path := filepath.Join(t.TempDir(), "r.html")
	if err := writeHTML(path, rep, 0); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil || !bytes.Contains(page, []byte("<img")) || !bytes.Contains(page, []byte(rep.ID)) {
		t.Errorf("page: %v, %d bytes", err, len(page))
	}
}
