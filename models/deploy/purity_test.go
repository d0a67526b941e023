package deploy

import (
	"testing"

	"github.com/vigil-av/vigil/internal/puritytest"
)

// TestPurity keeps the deployment core pure: standard library only, no
// goroutine, no clock: time comes in through Step.
func TestPurity(t *testing.T) { puritytest.Check(t, "the deployment core") }
