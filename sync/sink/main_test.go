package sink

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests (the
// concurrent writers of the race tests included).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
