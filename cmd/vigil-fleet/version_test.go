package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/internal/version"
)

// TestVersion: `vigil-fleet --version` prints the version, the commit, the
// ONNX Runtime release the build pairs with and Go's version, and exits 0;
// a build that sets the version and the commit with the linker flags the
// packages use prints those.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{arg}, &out, &errb); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if want := version.String("vigil-fleet", version.ONNXRuntime) + "\n"; out.String() != want {
			t.Errorf("%s printed %q, want %q", arg, out.String(), want)
		}
	}

	bin := filepath.Join(t.TempDir(), "vigil-fleet")
	const pkg = "github.com/vigil-av/vigil/internal/version"
	ldflags := "-X " + pkg + ".Version=0.3.1 -X " + pkg + ".Commit=9083a3363c19d005a9a4f9255f89da99e6916aca"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--version")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("vigil-fleet --version: %v (exit code %d)\n%s", err, cmd.ProcessState.ExitCode(), stderr.String())
	}
	want := regexp.MustCompile(`^vigil-fleet 0\.3\.1 \(commit 9083a3363c19, ONNX Runtime ` + regexp.QuoteMeta(version.ONNXRuntime) + `, go1\.[0-9.]+\S*\)\n$`)
	if !want.Match(out) || strings.TrimSpace(stderr.String()) != "" {
		t.Errorf("the linked build printed %q (stderr %q)", out, stderr.String())
	}
}
