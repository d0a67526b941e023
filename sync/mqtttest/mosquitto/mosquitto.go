// Package mosquitto finds and runs a Mosquitto broker on this machine for
// the tests (through sync/mqtttest) and for vigil-bench: the process
// only; each writes its own configuration.
package mosquitto

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"
)

// ErrNotFound says the mosquitto executable is nowhere to be found.
var ErrNotFound = errors.New("mosquitto was found neither on PATH nor at /usr/sbin/mosquitto: install Debian's mosquitto package (apt-get install -y mosquitto)")

// Find locates the mosquitto executable: bin when given (looked up on
// PATH if it has no slash), else mosquitto on PATH, then /usr/sbin and
// /usr/local/sbin, where Debian puts it outside root's PATH.
func Find(bin string) (string, error) {
	if bin != "" {
		return exec.LookPath(bin)
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// FreePort returns a TCP port free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Proc is a broker process started by Start.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs bin with the configuration file conf and waits until addr
// (the configuration's listener) accepts TCP connections. When the broker
// exits first (its port may have been taken meanwhile), or deadline
// passes, it is killed and Start returns an error; the caller may retry,
// on another port.
func Start(bin, conf, addr string, deadline time.Time) (*Proc, error) {
	p := &Proc{cmd: exec.Command(bin, "-c", conf), done: make(chan struct{})}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }() //nolint:errcheck // killed on purpose
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before listening on %s", bin, addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Kill()
	return nil, fmt.Errorf("%s did not listen on %s in time", bin, addr)
}

// Signal sends sig to the broker, e.g. SIGUSR1, which makes Mosquitto
// write its persistence database.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill kills the broker (SIGKILL: a crash, no goodbye to its clients)
// and waits for it to exit.
func (p *Proc) Kill() {
	p.cmd.Process.Kill() //nolint:errcheck // it may have exited
	<-p.done
}
