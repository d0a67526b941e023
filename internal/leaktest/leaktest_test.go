package leaktest

import (
	"strings"
	"testing"
)

// TestFindsOtherGoroutines: a goroutine that is not paho's fails at once,
// without waiting out the grace.
func TestFindsOtherGoroutines(t *testing.T) {
	stop := make(chan struct{})
	go func() { <-stop }()
	err := find(nil)
	close(stop)
	if err == nil || !strings.Contains(err.Error(), "TestFindsOtherGoroutines") {
		t.Errorf("find with a blocked goroutine: %v", err)
	}
	if err := find(nil); err != nil {
		t.Errorf("find once it ended: %v", err)
	}
}
