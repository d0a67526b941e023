package watchdog

import (
	"testing"

	"github.com/vigil-av/vigil/internal/puritytest"
)

// TestPurity keeps the machine pure: standard library only (none of
// onnxruntime, badger, paho, zap, nor the standard packages that do I/O
// or run things concurrently), no goroutine, no clock: time comes in
// through Step.
func TestPurity(t *testing.T) { puritytest.Check(t, "the machine") }
