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
// run on (a leak at once). They hit that worker only: its replacement
// starts clean. Clear disarms them (a wedged run stays wedged; leaked
// memory stays leaked).

// A leak grows the worker's memory by leakStep every leakEvery, on a
// thread of its own, as a library that leaks in the background would;
// runs go on meanwhile.
const (
	leakStep  = 16 << 20
	leakEvery = 20 * time.Millisecond
)

// childFaults is the fault armed in a worker.
type childFaults struct {
	mu      sync.Mutex
	kind    FaultKind
	leaking bool
	leaked  int // bytes
}

// arm sets the fault of the next runs ("" disarms); a leak starts at once
// and stops when disarmed (what it leaked stays).
func (f *childFaults) arm(k FaultKind) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kind = k
	if k == FaultLeak && !f.leaking {
		f.leaking = true
		go f.leak()
	}
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
	}
}

// leak maps and touches leakStep bytes every leakEvery, never freed, while
// the fault stays armed; when the memory limit refuses them, the worker
// ends as a native allocator would.
func (f *childFaults) leak() {
	t := time.NewTicker(leakEvery)
	defer t.Stop()
	for range t.C {
		f.mu.Lock()
		on := f.kind == FaultLeak
		f.leaking = on
		f.mu.Unlock()
		if !on {
			return
		}
		b, err := unix.Mmap(-1, 0, leakStep, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fatal error: out of memory: leak fault after %d MiB: %v\n", f.leaked>>20, err)
			os.Exit(2)
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		f.leaked += len(b)
	}
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

// clearWorkerFault disarms the fault of the backend's worker, if it has
// one, without waiting for the worker to confirm.
func (b *Backend) clearWorkerFault() {
	if b.w == nil {
		return
	}
	if p := b.w.cur.Load(); p != nil {
		_ = p.send(ctrlMsg{Op: "fault", Fault: FaultNone})
	}
}
