// Package inferencetest holds helpers for tests that run real ONNX Runtime
// sessions: it initialises the library fetched by `make deps` and writes
// models into a test's temporary directory.
package inferencetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/demo"
)

// RequireDepsEnv, when set to 1 (as .ci/run does), turns a skip for a
// missing dependency into a failure.
const RequireDepsEnv = "VIGIL_REQUIRE_DEPS"

// Missing skips the test on a developer machine without the dependency, and
// fails it where dependencies are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireDepsEnv) == "1" {
		t.Fatalf(format+" (run `make deps`)", args...)
	}
	t.Skipf(format+" (run `make deps`; set %s=1 to fail instead)", append(args, RequireDepsEnv)...)
}

// Init initialises ONNX Runtime from the default library, or skips or fails
// the test (see Missing) when the library is not there.
func Init(t testing.TB) {
	t.Helper()
	path, err := inference.DefaultLibraryPath()
	if err != nil {
		Missing(t, "onnxruntime library: %v", err)
	}
	if err := inference.Init(path); err != nil {
		t.Fatalf("inference.Init(%s): %v", path, err)
	}
}

// DemoModels writes the three demo models into a temporary directory and
// returns a map from role to path.
func DemoModels(t testing.TB) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths, err := demo.WriteAll(dir)
	if err != nil {
		t.Fatalf("write demo models: %v", err)
	}
	m := make(map[string]string, len(paths))
	for i, role := range demo.Roles {
		m[role] = paths[i]
	}
	return m
}

// DemoBatchModels writes the multi-camera variants of the three demo models
// (demo.GenerateBatched: a dynamic first axis on input and output) into a
// temporary directory and returns a map from role to path.
func DemoBatchModels(t testing.TB) map[string]string {
	t.Helper()
	dir := t.TempDir()
	m := make(map[string]string, len(demo.Roles))
	for _, role := range demo.Roles {
		data, err := demo.GenerateBatched(role)
		if err != nil {
			t.Fatalf("generate batched %s model: %v", role, err)
		}
		m[role] = filepath.Join(dir, demo.FileName(role))
		if err := os.WriteFile(m[role], data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// WriteModel writes model bytes (from a generator that may fail) to a file
// in a temporary directory and returns its path.
func WriteModel(t testing.TB, name string, data []byte, err error) string {
	t.Helper()
	if err != nil {
		t.Fatalf("build model %s: %v", name, err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
