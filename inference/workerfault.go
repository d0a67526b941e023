package inference

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Faults of a worker process (FaultCrash, FaultWedge, FaultLeak): Faulty
// sends them to the worker in service, which applies them from its next
// run on. They hit that worker only: its replacement starts clean.

// leakStep is what a leaking worker leaks per run.
const leakStep = 8 << 20

// childFaults is the fault armed in a worker.
type childFaults struct {
	mu     sync.Mutex
	kind   FaultKind
	leaked [][]byte
}

func (f *childFaults) arm(k FaultKind) {
	f.mu.Lock()
	f.kind = k
	f.mu.Unlock()
}

// beforeRun applies the armed fault to the run about to start.
func (f *childFaults) beforeRun() {
	f.mu.Lock()
	k := f.kind
	f.mu.Unlock()
	switch k {
	case FaultCrash:
		// A native library's abort: the process dies under the run.
		fmt.Fprintln(os.Stderr, "vigil worker: crash fault: aborting")
		_ = syscall.Kill(os.Getpid(), syscall.SIGABRT)
		select {}
	case FaultWedge:
		// A hung GPU kernel: the call never returns, whatever Terminate
		// says. The thread sleeps in the kernel for good.
		for {
			ts := unix.Timespec{Sec: 3600}
			_ = unix.Nanosleep(&ts, nil)
		}
	case FaultLeak:
		f.mu.Lock()
		f.leak()
		f.mu.Unlock()
	}
}

// leak maps and touches leakStep bytes that are never freed; when the
// memory limit refuses them, the worker ends as a native allocator would.
func (f *childFaults) leak() {
	b, err := unix.Mmap(-1, 0, leakStep, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal error: out of memory: leak fault after %d MiB: %v\n", len(f.leaked)*leakStep>>20, err)
		os.Exit(2)
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	f.leaked = append(f.leaked, b)
}

// injectWorkerFault arms a worker fault in the backend's worker.
func (b *Backend) injectWorkerFault(k FaultKind) error {
	if b.w == nil {
		return fmt.Errorf("backend %s: fault %s needs a backend in a worker process (isolation: process)", b.cfg.Name, k)
	}
	p := b.w.cur.Load()
	if p == nil {
		return b.w.downError()
	}
	select {
	case <-p.faultAck: // a stale one
	default:
	}
	if err := p.send(ctrlMsg{Op: "fault", Fault: k}); err != nil {
		return fmt.Errorf("backend %s: fault %s: %w", b.cfg.Name, k, err)
	}
	// Armed before the next run: the run's doorbell is another socket.
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-p.faultAck:
		return nil
	case <-p.p.Done():
		return fmt.Errorf("backend %s: fault %s: the worker ended first", b.cfg.Name, k)
	case <-t.C:
		return fmt.Errorf("backend %s: fault %s: the worker did not confirm it within 1s", b.cfg.Name, k)
	}
}
