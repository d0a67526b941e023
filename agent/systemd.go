package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// notifier speaks systemd's notify protocol (sd_notify): datagrams such as
// "READY=1" to the socket named by $NOTIFY_SOCKET. Outside systemd it does
// nothing.
type notifier struct {
	addr *net.UnixAddr
}

func newNotifier() *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &notifier{}
	}
	if path[0] == '@' { // abstract socket
		path = "\x00" + path[1:]
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// enabled reports whether the daemon runs under systemd with notify.
func (n *notifier) enabled() bool { return n.addr != nil }

// notify sends one state string, e.g. "READY=1\nSTATUS=serving".
func (n *notifier) notify(state string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// watchdogInterval is how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, when systemd's watchdog is on for this process.
func watchdogInterval() (time.Duration, error) {
	s := os.Getenv("WATCHDOG_USEC")
	if s == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil || us <= 0 {
		return 0, errors.New("WATCHDOG_USEC is not a positive number of microseconds")
	}
	return time.Duration(us) * time.Microsecond / 2, nil
}

// startPings sends systemd watchdog pings (WATCHDOG=1) every half of
// $WATCHDOG_USEC while the watchdog loop and the socket server are alive,
// and only then; outside systemd's watchdog it does nothing.
func (d *Daemon) startPings(context.Context) error {
	every, err := watchdogInterval()
	if err != nil {
		d.log.Warn("systemd watchdog", zap.Error(err))
	}
	if every <= 0 || !d.notify.enabled() {
		return nil
	}
	d.pingStop, d.pingDone = make(chan struct{}), make(chan struct{})
	go d.ping(every)
	return nil
}

func (d *Daemon) ping(every time.Duration) {
	defer close(d.pingDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.pingStop:
			return
		case <-t.C:
			if d.shell.Alive(every) && d.serving.Load() {
				d.notify.notify("WATCHDOG=1")
			} else {
				d.log.Error("an internal loop is stuck: withholding the systemd watchdog ping")
			}
		}
	}
}

// stopPings ends the pings.
func (d *Daemon) stopPings(context.Context) error {
	if d.pingStop != nil {
		close(d.pingStop)
		<-d.pingDone
	}
	return nil
}
