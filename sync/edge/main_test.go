package edge_test

import (
	"testing"

	"github.com/vigil-av/vigil/internal/leaktest"
)

// TestMain fails the package when a goroutine outlives its tests: every
// uploader and paho client they start must be closed.
func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
