package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/models/demo"
)

func TestRunWritesModels(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-out", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	names := []string{"primary.onnx", "shadow.onnx", "degraded.onnx", "primary-v2.onnx", "primary-bad.onnx", "primary-slow.onnx"}
	if len(lines) != len(names) {
		t.Fatalf("stdout = %q, want %d lines", stdout.String(), len(names))
	}
	for i, name := range names {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fields := strings.Fields(lines[i])
		want := []string{path, "sha256:" + hex.EncodeToString(sum[:]), strconv.Itoa(len(data)), "bytes"}
		if strings.Join(fields, " ") != strings.Join(want, " ") {
			t.Errorf("line %d = %q, want %q", i, lines[i], strings.Join(want, "  "))
		}
	}
	// The files are the generators' bytes.
	for _, role := range demo.Roles {
		checkFile(t, filepath.Join(dir, demo.FileName(role)), demo.Generate, role)
	}
	for _, name := range demo.Rollouts {
		checkFile(t, filepath.Join(dir, demo.FileName(name)), demo.GenerateRollout, name)
	}
}

func checkFile(t *testing.T, path string, generate func(string) ([]byte, error), name string) {
	t.Helper()
	want, err := generate(name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the %s model's %d", path, len(got), name, len(want))
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run([]string{"--help"}, &stdout, &stderr); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"Usage: vigil-models", "-out", "primary-v2.onnx", "primary-bad.onnx", "primary-slow.onnx", "within 0.5% of", "within 0.05 of", "within 0.0001 of"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--help printed %q, want it to mention %q", stderr.String(), want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-out", ""}, "-out"},
		{[]string{"-out", file}, file},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-bogus"}, "-bogus"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := run(c.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) error = %v, want one containing %q", c.args, err, c.want)
		}
	}
}

// TestRunRolloutWriteError: a rollout model that cannot be written is
// reported by its path.
func TestRunRolloutWriteError(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "primary-bad.onnx", "keep")
	if err := os.MkdirAll(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run([]string{"-out", dir}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "primary-bad.onnx")) {
		t.Fatalf("run error = %v, want one naming %s", err, filepath.Join(dir, "primary-bad.onnx"))
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing when a model failed", stdout.String())
	}
	if _, err := os.Stat(blocker); err != nil {
		t.Errorf("the directory in the way: %v, want it untouched", err)
	}
}
