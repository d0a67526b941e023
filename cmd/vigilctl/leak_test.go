package main

import (
	"testing"

	"go.uber.org/goleak"
)

// checkpoint now waits for the daemon's answer on a goroutine of its own
// (checkpoint.go): none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
