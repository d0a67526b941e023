package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestSocketSuite(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"socket", "--runs", "20", "--warmup", "2", "--duration", "100ms", "--conns", "2", "--callers", "2"}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	re := regexp.MustCompile(`^RESULT suite=socket rtt_ratio_p50=[0-9]+\.[0-9]{3} rtt_p50_us=[0-9]+ echo_p50_us=[0-9]+ rps=[0-9]+ rss_mb=([0-9]+\.[0-9]) shm_rtt_ratio_p50=[0-9]+\.[0-9]{3}$`)
	m := re.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q does not match %s\n%s", last, re, out.String())
	}
	// vigild ran as a process of its own: its peak resident size is that
	// of a process with ONNX Runtime and three models loaded, not zero.
	if rss, _ := strconv.ParseFloat(m[1], 64); rss < 10 {
		t.Errorf("rss_mb %s: vigild's peak resident size was not read", m[1])
	}
	if !strings.Contains(out.String(), "memory_limit_mb, 256,") {
		t.Errorf("no memory line naming vigild's limit:\n%s", out.String())
	}
}

func TestSocketFlagErrors(t *testing.T) {
	cases := map[string][]string{
		"need at least 10":    {"socket", "--runs", "3"},
		"--conns":             {"socket", "--conns", "0"},
		"--duration":          {"socket", "--duration", "0s"},
		"unexpected argument": {"socket", "extra"},
		"--vigild":            {"socket", "--vigild", "/nonexistent/vigild", "--runs", "10", "--warmup", "1", "--duration", "10ms"},
	}
	for want, args := range cases {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error mentioning %q", args, err, want)
		}
	}
}
