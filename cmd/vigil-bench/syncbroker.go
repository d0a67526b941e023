package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-av/vigil/sync/mqtttest/mosquitto"
)

// findMosquitto locates the broker as sync/mqtttest does: the given
// path, else mosquitto on PATH, else the Debian package's locations.
func findMosquitto(bin string) (string, error) {
	p, err := mosquitto.Find(bin)
	switch {
	case err == nil:
		return p, nil
	case bin != "":
		return "", fmt.Errorf("--mosquitto %s: %w", bin, err)
	default:
		return "", fmt.Errorf("sync: %w, or give a broker with --broker URL", err)
	}
}

// mosquittoProc is a broker this process started.
type mosquittoProc struct {
	*mosquitto.Proc
	addr, bin, conf string
}

// restart starts the broker again (after Kill) on its port, with its
// configuration.
func (m *mosquittoProc) restart(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := mosquitto.Start(m.bin, m.conf, m.addr, deadline)
		if err == nil {
			m.Proc = p
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto did not start again on %s: %w", m.addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the port may still be held
	}
}

// startMosquitto starts bin on a free loopback port with a configuration
// written in dir: the one sync/mqtttest uses (anonymous, no persistence,
// queues and in-flight windows that never throttle a benchmark), with
// set_tcp_nodelay when nodelay is set.
func startMosquitto(ctx context.Context, bin, dir string, nodelay bool) (*mosquittoProc, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "mosquitto.log")
	conf := filepath.Join(dir, "mosquitto.conf")
	deadline := time.Now().Add(10 * time.Second)
	for {
		port, err := mosquitto.FreePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		lines := []string{
			fmt.Sprintf("listener %d 127.0.0.1", port),
			"allow_anonymous true",
			"persistence false",
			"max_queued_messages 100000",
			"max_queued_bytes 0",
			"max_inflight_messages 0",
			"log_dest file " + logFile,
			"log_type error",
			"log_type warning",
			"log_type notice",
		}
		if nodelay {
			lines = append(lines, "set_tcp_nodelay true")
		}
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return nil, err
		}
		p, err := mosquitto.Start(bin, conf, addr, deadline)
		if err == nil {
			return &mosquittoProc{Proc: p, addr: addr, bin: bin, conf: conf}, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			raw, _ := os.ReadFile(logFile)
			return nil, fmt.Errorf("mosquitto did not start on %s: %v; log:\n%s", addr, err, raw)
		}
		// It exited: the port may have been taken meanwhile.
	}
}
