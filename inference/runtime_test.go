package inference_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/inference/inferencetest"
)

const initChildEnv = "VIGIL_TEST_INIT_CHILD"

// initIn runs inference.Init(lib) in a child process and returns what it
// printed and whether it succeeded.
func initIn(t *testing.T, lib string) (string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), initChildEnv+"="+lib)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("child: %v", err)
	}
	return string(out), err == nil
}

// fakeOldORT builds a shared library that looks like an ONNX Runtime too old
// for Vigil: it exports OrtGetApiBase, but GetApi returns no API for the
// version asked for, as a 1.1x release does for API 24.
func fakeOldORT(t *testing.T) string {
	t.Helper()
	// $CC when set: a cross-built test binary (scripts/test-arm64.sh sets
	// CC=aarch64-linux-gnu-gcc) needs a library of its own architecture.
	name := "gcc"
	if c := os.Getenv("CC"); c != "" {
		name = c
	}
	cc, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed to build the fake library (it is also needed for cgo): %v", name, err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "fake.c")
	code := `
typedef struct { const void *(*GetApi)(unsigned); const char *(*GetVersionString)(void); } Base;
static const void *get_api(unsigned v) { (void)v; return 0; }
static const char *version(void) { return "1.10.0"; }
static Base base = { get_api, version };
const Base *OrtGetApiBase(void) { return &base; }
`
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "libonnxruntime.so.1")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
		t.Fatalf("build fake library: %v\n%s", err, out)
	}
	return lib
}

func TestInitRejectsBadLibraries(t *testing.T) {
	dir := t.TempDir()
	random := filepath.Join(dir, "random.so")
	if err := os.WriteFile(random, []byte("this is not an ELF file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	good, err := inference.DefaultLibraryPath()
	if err != nil {
		inferencetest.Missing(t, "onnxruntime library: %v", err)
	}
	wrongArch := filepath.Join(filepath.Dir(filepath.Dir(good)), "linux-"+other, "libonnxruntime.so.1")

	cases := []struct {
		name, lib string
		want      []string
	}{
		{"missing", filepath.Join(dir, "nope.so"), []string{"not found", "does not exist", "make deps"}},
		{"directory", dir, []string{"is a directory"}},
		{"not a library", random, []string{"cannot load onnxruntime library", random}},
		{"wrong architecture", wrongArch, []string{"cannot load onnxruntime library", "wrong architecture"}},
		{"too old", fakeOldORT(t), []string{"does not provide the C API", "older release"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, ok := initIn(t, c.lib)
			if ok {
				t.Fatalf("Init(%s) succeeded; output:\n%s", c.lib, out)
			}
			if !strings.Contains(out, "INIT ERROR") {
				t.Fatalf("child crashed instead of returning an error:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("error does not mention %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		if out, ok := initIn(t, good); !ok {
			t.Fatalf("Init(%s) failed:\n%s", good, out)
		}
	})
}

func TestDefaultLibraryPathHonoursEnv(t *testing.T) {
	t.Setenv(inference.LibraryEnv, "/opt/ort/libonnxruntime.so.1")
	p, err := inference.DefaultLibraryPath()
	if err != nil || p != "/opt/ort/libonnxruntime.so.1" {
		t.Fatalf("DefaultLibraryPath() = %q, %v", p, err)
	}
}

func TestInitTwice(t *testing.T) {
	inferencetest.Init(t)
	info, err := inference.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.Version, "1.24") {
		t.Errorf("runtime version %q, want 1.24.x", info.Version)
	}
	if err := inference.Init(info.LibraryPath); err != nil {
		t.Errorf("Init with the same library again: %v", err)
	}
	if err := inference.Init(fakeOldORT(t)); err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Errorf("Init with another library after success: %v, want 'already initialised'", err)
	}
}

func TestParseProvider(t *testing.T) {
	good := map[string]inference.Provider{
		"cpu":        {Kind: inference.CPU},
		"CUDA":       {Kind: inference.CUDA},
		"cuda:1":     {Kind: inference.CUDA, Device: 1},
		"tensorrt:0": {Kind: inference.TensorRT},
		"tensorrt:3": {Kind: inference.TensorRT, Device: 3},
	}
	for s, want := range good {
		got, err := inference.ParseProvider(s)
		if err != nil || got != want {
			t.Errorf("ParseProvider(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "gpu", "cpu:0", "cuda:x", "cuda:-1", "tensorrt:"} {
		if _, err := inference.ParseProvider(s); err == nil {
			t.Errorf("ParseProvider(%q) succeeded", s)
		}
	}
	if s := (inference.Provider{Kind: inference.CUDA, Device: 2}).String(); s != "cuda:2" {
		t.Errorf("String() = %q", s)
	}
}
