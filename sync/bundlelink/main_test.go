package bundlelink

import (
	"os"
	"testing"

	"github.com/vigil-av/vigil/internal/leaktest"
)

// TestMain fails the package when a goroutine outlives its tests; in a
// kill test's child process it runs that child instead (kill_test.go).
func TestMain(m *testing.M) {
	if mode := os.Getenv(killChildEnv); mode != "" {
		os.Exit(killChild(mode))
	}
	leaktest.VerifyTestMain(m)
}
