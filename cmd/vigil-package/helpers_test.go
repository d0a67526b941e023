package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// needTool returns the path of a command the test needs. Missing, it skips
// the test, or fails it when VIGIL_REQUIRE_DEPS is set (CI).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if c := filepath.Join(dir, name); isExecutable(c) {
			return c
		}
	}
	msg := name + " not found (Debian's packages: make package-tools)"
	if os.Getenv("VIGIL_REQUIRE_DEPS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// hostArch is this machine's Debian architecture, when the packages know it.
func hostArch(t *testing.T) string {
	t.Helper()
	if _, ok := machines[runtime.GOARCH]; !ok {
		t.Skipf("no package for %s", runtime.GOARCH)
	}
	return runtime.GOARCH
}

// fakeORT makes an ONNX Runtime directory whose library for arch is a copy
// of src, pinned with its true checksum.
func fakeORT(t *testing.T, arch, src string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, ortVersion, "linux-"+arch, "libonnxruntime.so.1")
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lib, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	pins := hex.EncodeToString(sum[:]) + "  linux-" + arch + "/libonnxruntime.so.1\n"
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(pins), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// standInBins puts a real dynamically linked executable of this machine
// (true(1)) where the packages expect vigild, vigilctl and vigil-fleet:
// what is tested here is the packaging, not the commands.
func standInBins(t *testing.T) string {
	t.Helper()
	src, err := exec.LookPath("true")
	if err != nil {
		t.Skip("true(1) not found")
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"vigild", "vigilctl", "vigil-fleet"} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// repoORT is the ONNX Runtime directory `make ort` fills, when it has the
// library for arch; otherwise the test skips (fails under VIGIL_REQUIRE_DEPS).
func repoORT(t *testing.T, arch string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "third_party", "onnxruntime")
	if _, err := os.Stat(filepath.Join(dir, ortVersion, "linux-"+arch, "libonnxruntime.so.1")); err != nil {
		msg := "ONNX Runtime " + ortVersion + " for " + arch + " not fetched (make ort)"
		if os.Getenv("VIGIL_REQUIRE_DEPS") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}
