package socket

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: the
// server's accept loop and connections, and the clients the tests run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
