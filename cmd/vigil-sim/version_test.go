package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/vigil-av/vigil/internal/version"
)

// TestVersion: --version prints the version line every command prints, on
// stdout, and succeeds (exit 0).
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out, &errb); err != nil {
		t.Fatalf("--version: %v (%s)", err, errb.String())
	}
	if want := version.String("vigil-sim", version.ONNXRuntime) + "\n"; out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}
