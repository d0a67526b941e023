package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInferenceSuite runs a short inference suite on the demo primary
// model (ONNX Runtime must be where `make deps` puts it) and checks its
// RESULT line: the figures are there, allocations per run (Backend.Run's
// and the router's) are zero, the platform's hand-off cost is measured,
// and what Backend.Run and the router each add to a bare run is given,
// in that order, then what a worker process adds to Backend.Run.
func TestInferenceSuite(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"inference", "--runs", "20", "--warmup", "2"}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	re := regexp.MustCompile(`^RESULT suite=inference overhead_p50=[0-9]+\.[0-9]{3} overhead_p99=[0-9]+\.[0-9]{3} bare_p50_us=[0-9]+ allocs_per_run=([0-9]+) handoff_us=([0-9]+\.[0-9]) overhead_us=(-?[0-9]+\.[0-9]) router_overhead_us=(-?[0-9]+\.[0-9]) worker_overhead_us=(-?[0-9]+\.[0-9])$`)
	m := re.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q does not match %s\n%s", last, re, out.String())
	}
	if m[1] != "0" {
		t.Errorf("allocs_per_run=%s, want 0", m[1])
	}
	if h, _ := strconv.ParseFloat(m[2], 64); h <= 0 || h > float64(time.Second/time.Microsecond) {
		t.Errorf("handoff_us=%s is not a measured hand-off", m[2])
	}
	// A run takes the demo model some hundreds of µs; what Vigil adds is
	// far less, even on a loaded machine.
	for i, name := range []string{"overhead_us", "router_overhead_us", "worker_overhead_us"} {
		if v, _ := strconv.ParseFloat(m[3+i], 64); v < -1000 || v > 10000 {
			t.Errorf("%s=%s is not a difference of two runs' times", name, m[3+i])
		}
	}
}

// TestInferenceQuickRuns: --quick sets 400 timed and 20 untimed runs, and
// --runs or --warmup given beside it win (the arm64 target runs the suite
// under qemu with a few runs).
func TestInferenceQuickRuns(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		runs, warmup int
	}{
		{[]string{"--quick"}, 400, 20},
		{[]string{"--quick", "--runs", "20", "--warmup", "2"}, 20, 2},
		{[]string{"--runs", "30", "--quick"}, 30, 20},
		{nil, 2000, 50},
	} {
		f, err := parseInferenceFlags(tc.args, io.Discard)
		if err != nil || f.runs != tc.runs || f.warmup != tc.warmup {
			t.Errorf("%v: runs %d warmup %d, %v; want %d, %d", tc.args, f.runs, f.warmup, err, tc.runs, tc.warmup)
		}
	}
}
