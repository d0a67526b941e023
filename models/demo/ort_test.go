package demo

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
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

// session runs one demo model on the CPU with one thread.
type session struct {
	s   *ort.AdvancedSession
	in  *ort.Tensor[float32]
	out *ort.Tensor[float32]
}

func newSession(t testing.TB, model []byte) *session {
	t.Helper()
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(InputShape...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Destroy() })
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(OutputShape...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Destroy() })
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewAdvancedSessionWithONNXData(model, []string{InputName}, []string{OutputName},
		[]ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		t.Fatalf("load model in ONNX Runtime: %v", err)
	}
	t.Cleanup(func() { _ = s.Destroy() })
	return &session{s: s, in: in, out: out}
}

// run copies frame into the input tensor, runs the model and returns a copy
// of the output.
func (s *session) run(t testing.TB, frame []float32) [3]float32 {
	t.Helper()
	copy(s.in.GetData(), frame)
	if err := s.s.Run(); err != nil {
		t.Fatalf("run: %v", err)
	}
	var out [3]float32
	copy(out[:], s.out.GetData())
	return out
}

// randomFrames returns n frames with pixels uniform on [0,1), reproducible
// from seed.
func randomFrames(n int, seed uint64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	size := 1
	for _, d := range InputShape {
		size *= int(d)
	}
	frames := make([][]float32, n)
	for i := range frames {
		f := make([]float32, size)
		for j := range f {
			f[j] = r.Float32()
		}
		frames[i] = f
	}
	return frames
}

func mustGenerate(t testing.TB, role string) []byte {
	t.Helper()
	data, err := Generate(role)
	if err != nil {
		t.Fatalf("generate %s: %v", role, err)
	}
	return data
}
