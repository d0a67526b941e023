package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
	"github.com/vigil-av/vigil/internal/version"
)

// TestVersion: `vigild --version` prints the version, the commit and the
// ONNX Runtime version and exits 0, asking the library itself when one
// loads and naming the pinned release when none does.
func TestVersion(t *testing.T) {
	line := regexp.MustCompile(`^vigild ` + regexp.QuoteMeta(version.Version) + ` \(commit ` + regexp.QuoteMeta(version.ShortCommit()) +
		`, ONNX Runtime (\S+), go1\.[0-9.]+\S*\)\n$`)
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--version", "--ort-library", filepath.Join(t.TempDir(), "none.so")}, &out, &errb); err != nil {
		t.Fatalf("--version: %v", err)
	}
	m := line.FindStringSubmatch(out.String())
	if m == nil || m[1] != version.ONNXRuntime {
		t.Fatalf("--version without a library printed %q, want the pinned ONNX Runtime %s", out.String(), version.ONNXRuntime)
	}
	if _, err := inference.Runtime(); err == nil {
		t.Fatal("a library that does not exist initialised ONNX Runtime")
	}

	lib, err := inference.DefaultLibraryPath()
	if err != nil {
		inferencetest.Missing(t, "onnxruntime library: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"--version"}, &out, &errb); err != nil {
		t.Fatalf("--version: %v", err)
	}
	info, err := inference.Runtime()
	if err != nil || info.LibraryPath == "" {
		t.Fatalf("--version did not load %s: %v", lib, err)
	}
	if m := line.FindStringSubmatch(out.String()); m == nil || m[1] != info.Version {
		t.Errorf("--version printed %q, want the loaded library's version %s", out.String(), info.Version)
	}
	if errb.Len() != 0 {
		t.Errorf("--version wrote to stderr: %q", errb.String())
	}
}
