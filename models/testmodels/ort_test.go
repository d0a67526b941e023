package testmodels

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// ortVersion is the ONNX Runtime release `make deps` installs.
const ortVersion = "1.24.3"

// TestMain initialises the ONNX Runtime environment once for the test binary.
func TestMain(m *testing.M) {
	lib, err := ortLibraryPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(); err != nil {
		fmt.Fprintf(os.Stderr, "initialise ONNX Runtime from %s: %v\n", lib, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := ort.DestroyEnvironment(); err != nil {
		fmt.Fprintf(os.Stderr, "destroy ONNX Runtime environment: %v\n", err)
	}
	os.Exit(code)
}

// ortLibraryPath finds the module root (the directory holding go.mod, above
// the test's working directory) and the library under third_party.
func ortLibraryPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
	lib := filepath.Join(dir, "third_party", "onnxruntime", ortVersion, "linux-"+runtime.GOARCH, "libonnxruntime.so.1")
	if _, err := os.Stat(lib); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("ONNX Runtime library %s is missing: run `make deps` in %s", lib, dir)
	} else if err != nil {
		return "", err
	}
	return lib, nil
}
