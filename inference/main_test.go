package inference_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-av/vigil/inference"
)

// TestMain lets this test binary serve as the worker process of backends
// with isolation: process (WorkerMain), and stand in for a separate process that tries
// to initialise ONNX Runtime from a given library (see runtime_test.go):
// ONNX Runtime can be initialised once per process, so each bad library is
// tried in a fresh one. Otherwise it runs the tests and fails the package
// when a goroutine outlives them (session workers, lanes, canaries, the
// fault wrappers' timers).
func TestMain(m *testing.M) {
	inference.WorkerMain() // started as a backend's worker: serves and exits
	if lib, ok := os.LookupEnv(initChildEnv); ok {
		if err := inference.Init(lib); err != nil {
			os.Stdout.WriteString("INIT ERROR: " + err.Error() + "\n")
			os.Exit(3)
		}
		os.Stdout.WriteString("INIT OK\n")
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
