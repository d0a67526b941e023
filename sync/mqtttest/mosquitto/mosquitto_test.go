package mosquitto

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartKill: a broker started on a free port accepts connections;
// Kill stops it (the port refuses them) and ends the goroutine that waits
// for it; a configuration the broker refuses is an error, not a hang.
func TestStartKill(t *testing.T) {
	bin, err := Find("")
	if errors.Is(err, ErrNotFound) {
		if os.Getenv("VIGIL_REQUIRE_DEPS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Start(bin, conf, addr, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("the started broker refuses connections: %v", err)
	}
	c.Close()
	p.Kill()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the killed broker still accepts connections")
	}

	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("no_such_option on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(bin, bad, addr, time.Now().Add(10*time.Second)); err == nil {
		t.Error("a configuration the broker refuses started")
	}
}
