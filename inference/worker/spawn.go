package worker

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Arg is the hidden first argument that starts the daemon's binary as a
// worker.
const Arg = "__vigil-worker"

// Descriptors a worker finds open at start.
const (
	FdRegion    = 3 // the memfd
	FdControl   = 4 // the control socket
	FdFirstSlot = 5 // the doorbell of session 0; session i at FdFirstSlot+i
)

// envKept are the variables a worker inherits, for the GPU libraries;
// everything else of the daemon's environment stays behind.
var envKept = []string{"LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_CACHE_PATH", "CUDA_MODULE_LOADING", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE", "TZ"}

// Env is the worker's environment: the few variables the GPU libraries
// read, taken from ours, plus extra.
func Env(extra ...string) []string {
	var env []string
	for _, k := range envKept {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}

// SpawnConfig says what to start.
type SpawnConfig struct {
	// Path is the executable; empty means this process's own
	// (/proc/self/exe), so that an upgrade of the file on disk never mixes
	// versions.
	Path string
	// Args follow Arg on the command line.
	Args []string
	// Files are the descriptors from 3 on, in order.
	Files []*os.File
	// Env is the whole environment (see Env).
	Env []string
}

// Process is a started worker.
type Process struct {
	cmd    *exec.Cmd
	stderr *tail
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// Spawn starts a worker: its own process group (so that Kill reaches
// anything it started), SIGKILL when the thread that started it exits (Go
// keeps that thread; see docs/workers.md), its standard output and error
// kept as the tail of what it wrote, no descriptors but Files.
func Spawn(cfg SpawnConfig) (*Process, error) {
	path := cfg.Path
	if path == "" {
		path = "/proc/self/exe"
	}
	cmd := exec.Command(path, append([]string{Arg}, cfg.Args...)...)
	cmd.Env = cfg.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = "/"
	cmd.ExtraFiles = cfg.Files
	p := &Process{cmd: cmd, stderr: &tail{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the worker's process id (and its process group's).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL to the worker's process group.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = unix.Kill(-p.Pid(), unix.SIGKILL)
}

// Done is closed once the worker has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exit describes how the worker ended ("exit status 2", "signal: killed")
// with the last line it wrote, once Done is closed.
func (p *Process) Exit() string {
	how := "exited"
	if p.err != nil {
		how = p.err.Error()
	}
	if last := p.stderr.last(); last != "" {
		how += " (it wrote: " + last + ")"
	}
	return how
}

// Output is the tail of what the worker wrote.
func (p *Process) Output() string { return p.stderr.String() }

// tail keeps the first KiB and the last few KiB a worker wrote: a crash
// says what happened first, then dumps its goroutines.
type tail struct {
	mu   sync.Mutex
	head []byte
	buf  []byte
}

const (
	headMax = 1024
	tailMax = 4096
)

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	written := len(b)
	if n := min(headMax-len(t.head), len(b)); n > 0 {
		t.head = append(t.head, b[:n]...)
		b = b[n:]
	}
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailMax {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailMax:]...)
	}
	return written, nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.head) + string(t.buf)
}

// last is the most telling line: a Go runtime's "fatal error", "panic" or
// signal line when there is one, else the last non-empty line.
func (t *tail) last() string {
	lines := strings.Split(strings.TrimSpace(t.String()), "\n")
	for _, l := range lines {
		for _, p := range []string{"fatal error:", "panic:", "SIGABRT", "SIGSEGV", "SIGBUS", "runtime: out of memory"} {
			if strings.HasPrefix(l, p) {
				return strings.TrimSpace(l)
			}
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
