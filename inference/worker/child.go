package worker

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SetMemoryLimit limits the calling process's data (heap, anonymous
// mappings, thread stacks: RLIMIT_DATA) to bytes. Beyond it an allocation
// fails: Go's runtime and ONNX Runtime's allocator then end the process.
// RLIMIT_AS would also count the address space Go and the thread pools
// reserve without using, which is several times what they touch.
func SetMemoryLimit(bytes uint64) error {
	lim := unix.Rlimit{Cur: bytes, Max: bytes}
	if err := unix.Setrlimit(unix.RLIMIT_DATA, &lim); err != nil {
		return fmt.Errorf("set RLIMIT_DATA to %d bytes: %w", bytes, err)
	}
	return nil
}

// ParentAlive reports whether the process that started this one is still
// its parent: one that died before the parent-death signal was armed
// leaves the worker to init.
func ParentAlive(parent int) bool { return os.Getppid() == parent }

// Memory is what /proc/<pid>/status says of a process's memory, in bytes.
type Memory struct {
	RSS, Data, Size int64
}

// ReadMemory reads a process's resident set, data and address-space sizes.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var p *int64
		switch k {
		case "VmRSS":
			p = &m.RSS
		case "VmData":
			p = &m.Data
		case "VmSize":
			p = &m.Size
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		*p = kb << 10
	}
	return m, nil
}

// Backoff spaces the restarts of a worker that keeps dying: none before
// the first, then Min, doubling up to Max. Reset after a worker proved
// itself.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next is the wait before the next restart.
func (b *Backoff) Next() time.Duration {
	b.n++
	if b.n == 1 {
		return 0
	}
	d := b.Min
	for i := 2; i < b.n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Failures is how many restarts in a row Next was asked for.
func (b *Backoff) Failures() int { return b.n }

// Reset forgets the failures.
func (b *Backoff) Reset() { b.n = 0 }
