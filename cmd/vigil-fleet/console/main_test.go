package console

import (
	"testing"

	"github.com/vigil-av/vigil/internal/leaktest"
)

// TestMain fails the package when a goroutine outlives its tests.
func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
