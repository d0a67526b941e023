package agent

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestNotifierSendsToNotifySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	n := newNotifier()
	if !n.enabled() {
		t.Fatal("notifier disabled with NOTIFY_SOCKET set")
	}
	if err := n.notify("READY=1\nSTATUS=serving"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	l.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := l.Read(buf)
	if err != nil || string(buf[:k]) != "READY=1\nSTATUS=serving" {
		t.Fatalf("got %q, %v", buf[:k], err)
	}
}

func TestNotifierOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := newNotifier()
	if n.enabled() || n.notify("READY=1") != nil {
		t.Error("a notifier without NOTIFY_SOCKET must do nothing")
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", "")
	if d, err := watchdogInterval(); err != nil || d != time.Second {
		t.Errorf("interval %v, %v; want 1s", d, err)
	}
	t.Setenv("WATCHDOG_PID", "1")
	if d, _ := watchdogInterval(); d != 0 {
		t.Errorf("interval %v for another pid", d)
	}
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "x")
	if _, err := watchdogInterval(); err == nil {
		t.Error("bad WATCHDOG_USEC accepted")
	}
}
