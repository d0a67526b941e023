package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-av/vigil/agent/client"
)

// vigildBinary is the vigild the suites start: flagPath when given, else
// one built from this module with `go build` into dir (the build cache
// makes that a second or two after the first time).
func vigildBinary(ctx context.Context, flagPath, dir string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("--vigild %s: %w", flagPath, err)
		}
		return flagPath, nil
	}
	bin := filepath.Join(dir, "vigild")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/vigil-av/vigil/cmd/vigild")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build vigild (give a built one with --vigild): %v\n%s", err, out)
	}
	return bin, nil
}

// vigildProc is a vigild this process started, its log going to a file.
type vigildProc struct {
	cmd      *exec.Cmd
	logPath  string
	launched time.Time // just before the process was started
	done     chan struct{}
	waitErr  error
}

// startVigild starts bin with the configuration file config, its stderr
// (the log) into logPath.
func startVigild(bin, config, logPath string) (*vigildProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "--config", config)
	cmd.Stderr = logf
	p := &vigildProc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.launched = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited says whether the process has ended.
func (p *vigildProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL, as a crash would end it, and waits for the process.
func (p *vigildProc) kill() {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck // it may just have gone
	}
	<-p.done
}

// stop asks vigild to stop (SIGTERM) and waits up to grace, then kills it.
func (p *vigildProc) stop(grace time.Duration) error {
	if p.exited() {
		return fmt.Errorf("vigild had exited: %v", p.waitErr)
	}
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may just have gone
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("vigild did not stop within %v of SIGTERM; killed", grace)
	}
}

// logTail is the last lines of the process's log, for an error.
func (p *vigildProc) logTail(n int) string {
	raw, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// memMB is the process's peak (VmHWM) and current (VmRSS) resident set
// size in MB, from /proc/<pid>/status.
func (p *vigildProc) memMB() (peak, now float64, err error) {
	return procMemMB(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "status"))
}

// cpuTime is the CPU time the process has used so far, user and system,
// from /proc/<pid>/stat (in USER_HZ ticks, 100 a second on Linux).
func (p *vigildProc) cpuTime() (time.Duration, error) {
	path := filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "stat")
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, utime the 12th, stime the 13th.
	i := bytes.LastIndexByte(raw, ')')
	fields := strings.Fields(string(raw[i+1:]))
	if i < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("%s: unexpected layout", path)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procMemMB reads VmHWM and VmRSS from a /proc/<pid>/status file.
func procMemMB(path string) (peak, now float64, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var found int
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(val)
		if !ok || len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmHWM":
			peak, found = kb/1024, found+1
		case "VmRSS":
			now, found = kb/1024, found+1
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("%s: no VmHWM and VmRSS", path)
	}
	return peak, now, nil
}

// firstAnswer is how long after its launch a restarted vigild accepted a
// connection on its socket and gave its first OK answer.
type firstAnswer struct {
	accept, answer time.Duration
	tries          int // requests sent until the first OK answer
}

// probeFirstAnswer dials the socket at path every millisecond from p's
// launch until it accepts, then sends req until an answer is OK, and
// returns the times and the connected client. It gives up when the
// process exits or after timeout.
func probeFirstAnswer(ctx context.Context, p *vigildProc, path string, req *client.InferRequest, timeout time.Duration) (firstAnswer, *client.Client, error) {
	var fa firstAnswer
	deadline := p.launched.Add(timeout)
	var c *client.Client
	for c == nil {
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		var err error
		c, err = client.DialOptions(dctx, path, client.Options{DialTimeout: 50 * time.Millisecond})
		cancel()
		if err == nil {
			fa.accept = time.Since(p.launched)
			break
		}
		if err := probeWait(ctx, p, deadline, "accept a connection on "+path); err != nil {
			return fa, nil, err
		}
	}
	var resp client.InferResponse
	for {
		fa.tries++
		req.FrameSeq++
		err := c.InferInto(ctx, req, &resp)
		if err == nil && resp.OK() {
			fa.answer = time.Since(p.launched)
			return fa, c, nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			c.Close()
			return fa, nil, fmt.Errorf("request %d after the socket accepted: %w", fa.tries, err)
		}
		if err := probeWait(ctx, p, deadline, "answer OK"); err != nil {
			c.Close()
			return fa, nil, fmt.Errorf("%w (last answer %s/%s: %s)", err, resp.Status, resp.Reason, resp.Detail)
		}
	}
}

// probeWait waits a millisecond before the probe's next try, or says why
// there is none: the process exited, the deadline passed, ctx ended.
func probeWait(ctx context.Context, p *vigildProc, deadline time.Time, what string) error {
	switch {
	case p.exited():
		return fmt.Errorf("vigild exited before it could %s (%v); its log ends:\n%s", what, p.waitErr, p.logTail(15))
	case time.Now().After(deadline):
		return fmt.Errorf("vigild did not %s within %v of its start; its log ends:\n%s", what, deadline.Sub(p.launched), p.logTail(15))
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Millisecond):
		return nil
	}
}
