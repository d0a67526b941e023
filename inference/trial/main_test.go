package trial_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: the
// trial's loop, the candidates' session workers, the routers' lanes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
