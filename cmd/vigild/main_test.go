package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("vehicle_id: car-1\nwatchdog: {policy: warm}\n"), 0o644)
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--config", good, "--check-config", "--socket", "/tmp/x.sock"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "vehicle car-1, socket /tmp/x.sock") || !strings.Contains(out.String(), "policy warm") {
		t.Errorf("check-config printed %q", out.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("watchdog: {deadline: soon}\n"), 0o644)
	err := run(context.Background(), []string{"--config", bad, "--check-config"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "watchdog.deadline") {
		t.Errorf("bad config: %v, want an error naming the file and the field", err)
	}
	if err := run(context.Background(), []string{"--config", filepath.Join(dir, "none.yaml")}, &out, &errb); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Errorf("missing config: %v", err)
	}
	if err := run(context.Background(), []string{"--log-level", "chatty", "--check-config"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("bad --log-level: %v", err)
	}
	if err := run(context.Background(), []string{"extra"}, &out, &errb); err == nil {
		t.Error("stray argument accepted")
	}
}
