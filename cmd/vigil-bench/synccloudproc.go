package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// cloudProc is the sync suite's cloud side (synccloud.go) as the bench
// process sees it: a child process it started, sent requests on its
// stdin and answering on its stdout. close reaps it on every path.
type cloudProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	lines chan []byte   // its replies, one a line
	quit  chan struct{} // closed by close: replies nobody waits for are dropped
	done  chan struct{} // closed once the process is reaped
	// waitErr is cmd.Wait's error, set before done is closed.
	waitErr  error
	lastID   uint64 // the last request's ID
	closed   bool
	closeErr error
}

// cloudStopGrace is how long close waits for the cloud process to end
// on its own (it closes the ingester, which waits for the batches it is
// storing) before it kills it.
const cloudStopGrace = 15 * time.Second

// startCloud starts vigil-bench again as the cloud side for the broker at
// brokerURL; its stderr goes to stderr.
func startCloud(brokerURL string, stderr io.Writer) (*cloudProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("the cloud side runs vigil-bench again, but its executable is not known: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), syncCloudEnv+"="+brokerURL)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		stdin.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the cloud side (%s): %w", exe, err)
	}
	c := &cloudProc{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), lines: make(chan []byte),
		quit: make(chan struct{}), done: make(chan struct{})}
	go c.read(stdout)
	return c, nil
}

// read passes the process's reply lines on until its stdout closes, then
// reaps it.
func (c *cloudProc) read(stdout io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		select {
		case c.lines <- line:
		case <-c.quit:
		}
	}
	io.Copy(io.Discard, stdout) //nolint:errcheck // a line too long: drained so that the process is not left blocked
	c.waitErr = c.cmd.Wait()
}

// pid is the cloud process's id.
func (c *cloudProc) pid() int { return c.cmd.Process.Pid }

// call sends req and waits up to wait for its reply (a reply to an
// earlier request that timed out is skipped); a reply with an error is
// returned as the error.
func (c *cloudProc) call(ctx context.Context, req cloudRequest, wait time.Duration) (cloudReply, error) {
	if c.closed {
		return cloudReply{}, fmt.Errorf("cloud side, %s: the process is closed", req.Op)
	}
	c.lastID++
	req.ID = c.lastID
	if err := c.enc.Encode(req); err != nil {
		return cloudReply{}, fmt.Errorf("cloud side, %s: %w (%s)", req.Op, err, c.exitReason())
	}
	limit := time.NewTimer(wait)
	defer limit.Stop()
	for {
		select {
		case line := <-c.lines:
			var r cloudReply
			if err := json.Unmarshal(line, &r); err != nil {
				return r, fmt.Errorf("cloud side, %s: reply %q: %w", req.Op, line, err)
			}
			if r.ID != req.ID {
				continue
			}
			if r.Err != "" {
				return r, fmt.Errorf("cloud side, %s: %s", req.Op, r.Err)
			}
			return r, nil
		case <-c.done:
			return cloudReply{}, fmt.Errorf("cloud side, %s: %s", req.Op, c.exitReason())
		case <-limit.C:
			return cloudReply{}, fmt.Errorf("cloud side, %s: no reply within %v", req.Op, wait)
		case <-ctx.Done():
			return cloudReply{}, ctx.Err()
		}
	}
}

// exitReason says how the process ended, or that it is still running.
func (c *cloudProc) exitReason() string {
	select {
	case <-c.done:
		return fmt.Sprintf("the process (pid %d) ended: %v", c.pid(), c.waitErr)
	default:
		return fmt.Sprintf("the process (pid %d) is running", c.pid())
	}
}

// close closes the process's stdin, on which it closes what it runs and
// exits, waits up to cloudStopGrace, then kills it; it returns once the
// process is reaped. The error says when it did not end cleanly on its
// own. Calling close again returns the first call's error.
func (c *cloudProc) close() error {
	if c.closed {
		return c.closeErr
	}
	c.closed = true
	close(c.quit)
	c.stdin.Close()
	select {
	case <-c.done:
		if c.waitErr != nil {
			c.closeErr = fmt.Errorf("the cloud side (pid %d) ended with %v", c.pid(), c.waitErr)
		}
	case <-time.After(cloudStopGrace):
		c.cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck // it may just have ended
		<-c.done
		c.closeErr = fmt.Errorf("the cloud side (pid %d) did not end within %v of its stdin closing; killed", c.pid(), cloudStopGrace)
	}
	return c.closeErr
}
