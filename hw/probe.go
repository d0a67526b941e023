package hw

import (
	"context"
	"errors"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
)

// Probe reads the hardware's health. Read is called on an interval by one
// goroutine (see Sampler); it must return within its own bound even when the
// hardware hangs. Close releases what the probe holds, waiting at most
// until ctx ends (and within its own bound).
type Probe interface {
	Name() string
	Read(ctx context.Context) (Sample, error)
	Close(ctx context.Context) error
}

// EventSource is a Probe that also reports events as they happen (Xid
// errors, double-bit ECC errors, a lost GPU). The channel is closed when the
// probe is closed. Events are also folded into the next Sample.
type EventSource interface {
	Events() <-chan Event
}

// EventKind names what an Event reports.
type EventKind string

// Event kinds.
const (
	EventXid          EventKind = "xid"
	EventECCDoubleBit EventKind = "ecc_double_bit"
	EventGPULost      EventKind = "gpu_lost"
)

// Event is something the GPU reported between samples.
type Event struct {
	At   time.Time
	Kind EventKind
	// Xid is the Xid number of an EventXid; Fatal says whether it needs a
	// GPU reset (see DefaultFatalXids).
	Xid    uint32
	Fatal  bool
	Detail string
}

// Errors a caller branches on.
var (
	// ErrUnavailable: the probe cannot run here (no library, no device).
	ErrUnavailable = errors.New("hw probe unavailable")
	// ErrTimeout: a call to the hardware did not return within its bound;
	// the GPU is suspect.
	ErrTimeout = errors.New("hw probe call timed out")
	// ErrStuck: an earlier call that timed out has still not returned, so
	// no new call was made; the GPU is suspect.
	ErrStuck = errors.New("hw probe call still stuck")
	// ErrClosed: the probe was used after Close.
	ErrClosed = errors.New("hw probe closed")
)

// ProcfsProbe is the probe of last resort: the host's CPU, memory and
// thermal zones, no GPU.
type ProcfsProbe struct {
	Procfs Procfs
	// Clock stamps samples; nil means the system clock.
	Clock clock.Clock
}

// Name is "procfs".
func (p ProcfsProbe) Name() string { return "procfs" }

// Read takes one reading of the host.
func (p ProcfsProbe) Read(ctx context.Context) (Sample, error) {
	s := Sample{At: clock.Or(p.Clock).Now(), Source: p.Name()}
	if err := ctx.Err(); err != nil {
		return s, err
	}
	sys, err := p.Procfs.Read()
	s.System = sys
	return s, err
}

// Close does nothing.
func (ProcfsProbe) Close(context.Context) error { return nil }
