package hw

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: the
// samplers, the NVML worker and event loop, the scripted fake.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
