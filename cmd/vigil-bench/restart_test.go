package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestRestartSuite runs a short restart suite (the real vigild built from
// this module, Mosquitto, the ingester, ONNX Runtime) and checks its
// RESULT line's keys and forms, that each round is a new boot of the same
// store that found the backlog waiting and answered before its link
// drained, and that it leaves nothing in --dir.
func TestRestartSuite(t *testing.T) {
	needMosquitto(t)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"restart", "--records", "5000", "--rounds", "2", "--dir", dir}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	text := out.String()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	re := regexp.MustCompile(`^RESULT suite=restart rounds=2 first_answer_ms_p50=([0-9.]+) first_answer_ms_max=([0-9.]+) draining_ms_p50=([0-9.]+) draining_ms_max=([0-9.]+) accept_ms_p50=([0-9.]+) backlog_min=([0-9]+)$`)
	m := re.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q does not match %s\n%s", last, re, text)
	}
	num := func(i int) float64 {
		v, err := strconv.ParseFloat(m[i], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if p50, max := num(1), num(2); p50 <= 0 || max < p50 {
		t.Errorf("first answer p50 %v, max %v", p50, max)
	}
	if num(5) > num(1) {
		t.Errorf("the socket accepted (p50 %v ms) after the first answer (p50 %v ms)", num(5), num(1))
	}
	if num(3) <= 0 || num(4) < num(3) {
		t.Errorf("draining p50 %v, max %v", num(3), num(4))
	}
	if num(6) < 5000 {
		t.Errorf("backlog_min %v: a start found less than --records waiting", num(6))
	}
	// The first start is boot 2 of the store the suite filled (boot 1);
	// each round starts the next.
	roundRE := regexp.MustCompile(`(?m)^round ([12]) \(SIGKILL, start\): boot ([0-9]+), backlog [0-9]+: .* logged: .*ready`)
	rounds := roundRE.FindAllStringSubmatch(text, -1)
	if len(rounds) != 2 || rounds[0][2] != "3" || rounds[1][2] != "4" {
		t.Errorf("round lines %q, want rounds 1 and 2 as boots 3 and 4\n%s", rounds, text)
	}
	left, err := os.ReadDir(dir)
	if err != nil || len(left) != 0 {
		t.Errorf("--dir %s holds %d entries after the run: %v", dir, len(left), err)
	}
}

func TestRestartFlagErrors(t *testing.T) {
	for want, args := range map[string][]string{
		"--rounds":            {"restart", "--rounds", "0"},
		"--records":           {"restart", "--records", "10"},
		"--timeout":           {"restart", "--timeout", "0s"},
		"unexpected argument": {"restart", "extra"},
		"--vigild":            {"restart", "--vigild", "/nonexistent/vigild", "--records", "1000", "--rounds", "1"},
		"--dir":               {"restart", "--dir", filepath.Join(t.TempDir(), "missing")},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error mentioning %q", args, err, want)
		}
	}
}
