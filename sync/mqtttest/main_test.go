package mqtttest_test

import (
	"testing"

	"github.com/vigil-av/vigil/internal/leaktest"
)

// TestMain fails the package when a goroutine outlives its tests: the
// brokers and clients they start must be stopped.
func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
