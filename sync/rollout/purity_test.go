package rollout

import (
	"testing"

	"github.com/vigil-av/vigil/internal/puritytest"
)

// TestPurity: the planner's files import nothing that does I/O or reads
// the clock (besides the command and report types it plans with), start
// no goroutine, and take time as now.
func TestPurity(t *testing.T) {
	puritytest.Check(t, "the planner", "github.com/vigil-av/vigil/sync/command", "github.com/vigil-av/vigil/sync/rollout/deploywire")
}
