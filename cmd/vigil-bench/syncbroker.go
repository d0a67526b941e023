package main

import (
	"context"
	"fmt"
	"io"
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

// syncLink is the broker the suite runs against, the cloud side's
// process and the vehicle's way to the broker: the vehicle's side (raw
// publisher, uploader) reaches the broker at edgeURL, through the emulated
// uplink (a proxy in the cloud side's process) unless --uplink 0; the
// cloud's side (subscriber, ingester) at brokerURL.
type syncLink struct {
	broker               *mosquittoProc // nil when --broker gave one
	cloud                *cloudProc
	brokerURL, edgeURL   string
	brokerWhat, linkWhat string // for the suite's first line
}

// startSyncLink starts a Mosquitto in root unless --broker gave one, the
// cloud side's process, and in it the uplink proxy unless --uplink is 0.
func startSyncLink(ctx context.Context, f syncFlags, root string, stderr io.Writer) (*syncLink, error) {
	l := &syncLink{brokerURL: f.broker, brokerWhat: "given"}
	if l.brokerURL == "" {
		bin, err := findMosquitto(f.mosquitto)
		if err != nil {
			return nil, err
		}
		m, err := startMosquitto(ctx, bin, filepath.Join(root, "broker"), f.nodelay)
		if err != nil {
			return nil, err
		}
		l.broker = m
		l.brokerURL, l.brokerWhat = "tcp://"+m.addr, fmt.Sprintf("started here: %s, set_tcp_nodelay %v", bin, f.nodelay)
	}
	host := strings.TrimPrefix(l.brokerURL, "tcp://")
	if f.uplinkMbps > 0 && host == l.brokerURL {
		l.close()
		return nil, fmt.Errorf("--uplink needs a tcp:// broker, not %s", l.brokerURL)
	}
	cloud, err := startCloud(l.brokerURL, stderr)
	if err != nil {
		l.close()
		return nil, err
	}
	l.cloud = cloud
	l.edgeURL, l.linkWhat = l.brokerURL, "loopback"
	if f.uplinkMbps > 0 {
		r, err := cloud.call(ctx, cloudRequest{Op: opUplink, Target: host, Mbps: f.uplinkMbps, RTT: f.uplinkRTT}, 10*time.Second)
		if err != nil {
			l.close()
			return nil, err
		}
		l.edgeURL, l.linkWhat = r.URL, fmt.Sprintf("emulated uplink %g Mbit/s, RTT %v", f.uplinkMbps, f.uplinkRTT)
	}
	return l, nil
}

// close ends the cloud side's process (and the uplink in it), then kills
// the broker this process started (the process of its last restart). The
// error says when the cloud side did not end cleanly; it is reaped
// either way.
func (l *syncLink) close() error {
	var err error
	if l.cloud != nil {
		err = l.cloud.close()
	}
	if l.broker != nil {
		l.broker.Kill()
	}
	return err
}
