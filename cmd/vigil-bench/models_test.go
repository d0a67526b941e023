package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestModelsSuite runs a short models suite (real Mosquitto, the bundle
// server and fetcher, ONNX Runtime) and checks its RESULT line's keys and
// their forms, that every round's staged bundle verified, that the swap
// table has a row per phase, and that it leaves nothing in --dir.
func TestModelsSuite(t *testing.T) {
	needMosquitto(t)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"models", "--quick", "--bundle-mb", "2", "--rounds", "2", "--hold", "2s", "--dir", dir}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	text := out.String()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	re := regexp.MustCompile(`^RESULT suite=models bundle_mb=([0-9]+\.[0-9]{2}) download_ratio_vs_raw=([0-9]+\.[0-9]{3}) swap_missed=([0-9]+) swap_ms=([0-9]+) rollback_missed=([0-9]+)$`)
	m := re.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q does not match %s\n%s", last, re, text)
	}
	if m[1] != "2.00" {
		t.Errorf("bundle_mb=%s, want 2.00 (--bundle-mb 2)", m[1])
	}
	if v, err := strconv.ParseFloat(m[2], 64); err != nil || v <= 0 {
		t.Errorf("download_ratio_vs_raw=%s: want a positive number", m[2])
	}
	for i, name := range []string{"swap_missed", "swap_ms", "rollback_missed"} {
		if _, err := strconv.Atoi(m[i+3]); err != nil {
			t.Errorf("%s=%s: want an integer", name, m[i+3])
		}
	}
	if n := strings.Count(text, "staged bundle verified"); n != 2 {
		t.Errorf("%d rounds say their staged bundle verified, want 2\n%s", n, text)
	}
	for _, row := range []string{"steady", "promotion/1", "rollback/1"} {
		if !regexp.MustCompile(`(?m)^` + row + ` +[0-9]+ +[0-9]+ `).MatchString(text) {
			t.Errorf("no %s row in the swap table\n%s", row, text)
		}
	}
	if !strings.Contains(text, "pilotnet 2.0.0 -> pilotnet 1.") {
		t.Errorf("no rollback from version 2.0.0 to the original reported\n%s", text)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Errorf("--dir holds %d entries after the run (%v), want none", len(left), err)
	}
}

func TestModelsFlagErrors(t *testing.T) {
	cases := map[string][]string{
		"--mbps":              {"models", "--mbps", "0"},
		"--rtt":               {"models", "--rtt", "-1ms"},
		"--bundle-mb":         {"models", "--bundle-mb", "0"},
		"--rounds":            {"models", "--rounds", "0"},
		"--window":            {"models", "--window", "-1"},
		"--rate":              {"models", "--rate", "0"},
		"--deadline":          {"models", "--deadline", "0s"},
		"--swaps":             {"models", "--swaps", "0"},
		"--hold":              {"models", "--quick", "--hold", "1s"},
		"--timeout":           {"models", "--timeout", "0s"},
		"--models":            {"models", "--models", "/nonexistent/models"},
		"--mosquitto":         {"models", "--mosquitto", "/nonexistent/mosquitto"},
		"unexpected argument": {"models", "extra"},
	}
	for want, args := range cases {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error mentioning %q", args, err, want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q before refusing", args, out.String())
		}
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"models", "--help"}, &out, &errb); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errb.String(), "download_ratio_vs_raw") {
		t.Errorf("models --help: %v\n%s", err, errb.String())
	}
}

// TestClassifyWindows: a frame belongs to a swap's window from swapMargin
// before its Replace began until swapMargin after it returned, both ends
// included; the others are steady.
func TestClassifyWindows(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	events := []*swapEvent{
		{name: "promotion/1", start: at(3 * time.Second), end: at(3*time.Second + 200*time.Millisecond)},
		{name: "rollback/1", start: at(8 * time.Second), end: at(8*time.Second + 100*time.Millisecond)},
	}
	frames := []frameRecord{
		{sent: at(1999 * time.Millisecond)},                     // steady
		{sent: at(2 * time.Second)},                             // promotion: its window's first instant
		{sent: at(3100 * time.Millisecond), late: true},         // promotion, missed
		{sent: at(4200 * time.Millisecond), noResult: true},     // promotion: its window's last instant, missed
		{sent: at(4201 * time.Millisecond), dropped: true},      // steady, missed
		{sent: at(7 * time.Second), late: true, noResult: true}, // rollback, missed once
		{sent: at(9101 * time.Millisecond)},                     // steady
	}
	var steady phaseStats
	classify(frames, events, &steady)
	for _, c := range []struct {
		name           string
		got            *phaseStats
		frames, missed int
	}{
		{"steady", &steady, 3, 1},
		{"promotion/1", &events[0].stats, 3, 2},
		{"rollback/1", &events[1].stats, 1, 1},
	} {
		if c.got.frames != c.frames || c.got.missed != c.missed {
			t.Errorf("%s: %d frames, %d missed; want %d and %d", c.name, c.got.frames, c.got.missed, c.frames, c.missed)
		}
	}
	if steady.dropped != 1 || len(steady.latencies) != 2 {
		t.Errorf("steady: %d dropped, %d latencies; want 1 and 2 (a dropped frame has no latency)", steady.dropped, len(steady.latencies))
	}
	r := swapResults{promotions: events[:1], rollbacks: events[1:]}
	if r.missed(r.promotions) != 2 || r.missed(r.rollbacks) != 1 {
		t.Errorf("missed: promotions %d, rollbacks %d; want 2 and 1", r.missed(r.promotions), r.missed(r.rollbacks))
	}
}
