package inference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTVersion is the ONNX Runtime release that `make deps` fetches and that
// Vigil is built and tested against. Its C API version (24) is the one
// onnxruntime_go v1.27 asks for; later releases also provide it.
const ORTVersion = "1.24.3"

// LibraryEnv names the environment variable that overrides the default
// location of the ONNX Runtime shared library.
const LibraryEnv = "VIGIL_ORT_LIBRARY"

// ErrLibraryNotFound is returned when no ONNX Runtime shared library can be
// found at the configured or default location.
var ErrLibraryNotFound = errors.New("onnxruntime shared library not found")

// ErrNotInitialized is returned by Load when Init has not succeeded.
var ErrNotInitialized = errors.New("onnxruntime is not initialized: call inference.Init first")

var env struct {
	mu      sync.Mutex
	path    string // library in use once initialised
	version string
}

// libraryRel is where `make deps` puts the library for this host, relative to
// the repository root.
func libraryRel() string {
	return filepath.Join("third_party", "onnxruntime", ORTVersion,
		"linux-"+runtime.GOARCH, "libonnxruntime.so.1")
}

// DefaultLibraryPath returns the ONNX Runtime library Vigil uses when none is
// configured: $VIGIL_ORT_LIBRARY if set, else the library fetched by
// `make deps` for the host's architecture, looked for in the working directory
// and its parents, then beside the executable and its parents. The error names
// every place that was tried.
func DefaultLibraryPath() (string, error) {
	if p := os.Getenv(LibraryEnv); p != "" {
		return p, nil
	}
	rel := libraryRel()
	var tried []string
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("%w: looked for %s in the working directory, beside the executable and in their parents; run `make deps`, or give the path with --ort-library or $%s (tried %d places, first %s)",
		ErrLibraryNotFound, rel, LibraryEnv, len(tried), firstOr(tried, "none"))
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// Init loads the ONNX Runtime shared library at path (DefaultLibraryPath when
// empty) and creates the process-wide ONNX Runtime environment. It is safe to
// call more than once with the same library; a different library after a
// successful Init is an error, because ONNX Runtime allows one environment per
// process. A failed Init changes nothing and may be retried.
func Init(path string) error {
	env.mu.Lock()
	defer env.mu.Unlock()
	if path == "" {
		p, err := DefaultLibraryPath()
		if err != nil {
			return err
		}
		path = p
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("onnxruntime library %s: %w", path, err)
	}
	if env.path != "" {
		if env.path == abs {
			return nil
		}
		return fmt.Errorf("onnxruntime is already initialised with %s; cannot switch to %s in the same process", env.path, abs)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist; run `make deps`, or give the path with --ort-library or $%s", ErrLibraryNotFound, abs, LibraryEnv)
	case err != nil:
		return fmt.Errorf("onnxruntime library %s: %w", abs, err)
	case st.IsDir():
		return fmt.Errorf("onnxruntime library %s is a directory; give the path of libonnxruntime.so.1 itself", abs)
	}
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return explainInitError(abs, err)
	}
	env.path = abs
	env.version = ort.GetVersion()
	// Telemetry is a Windows-only feature of ONNX Runtime; the call is
	// harmless elsewhere, and a vehicle must not phone home on its own.
	_ = ort.DisableTelemetry()
	return nil
}

func explainInitError(path string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Error setting ORT API base"):
		return fmt.Errorf("onnxruntime library %s does not provide the C API that Vigil needs (ONNX Runtime %s or later); it is probably an older release: %w", path, ORTVersion, err)
	case strings.Contains(msg, "OrtGetApiBase"):
		return fmt.Errorf("%s is not an ONNX Runtime library (it has no OrtGetApiBase): %w", path, err)
	case strings.Contains(msg, "Error loading ONNX shared library"):
		return fmt.Errorf("cannot load onnxruntime library %s (wrong architecture, or a file that is not a shared library?): %w", path, err)
	}
	return fmt.Errorf("initialise onnxruntime from %s: %w", path, err)
}

// RuntimeInfo describes the initialised ONNX Runtime.
type RuntimeInfo struct {
	LibraryPath string `json:"library_path"`
	Version     string `json:"version"`
}

// Runtime reports the library in use, or ErrNotInitialized.
func Runtime() (RuntimeInfo, error) {
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.path == "" {
		return RuntimeInfo{}, ErrNotInitialized
	}
	return RuntimeInfo{LibraryPath: env.path, Version: env.version}, nil
}

func initialized() bool {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.path != ""
}
