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
)

func TestRunWritesModels(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-out", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("stdout = %q, want three lines", stdout.String())
	}
	for i, name := range []string{"primary.onnx", "shadow.onnx", "degraded.onnx"} {
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
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run([]string{"--help"}, &stdout, &stderr); err != nil {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(stderr.String(), "Usage: vigil-models") || !strings.Contains(stderr.String(), "-out") {
		t.Errorf("--help printed %q", stderr.String())
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
