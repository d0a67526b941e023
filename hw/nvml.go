package hw

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
)

// DefaultFatalXids are the Xid errors that need a GPU reset (or leave the
// GPU unfit to run a model until reset): 48 double-bit ECC, 61/62 internal
// micro-controller halt, 63/64 row-remapping pending/failed, 74 NVLink
// error, 79 fallen off the bus, 94/95 contained/uncontained ECC error (94
// corrupts the faulting process's memory, which is ours), 119/120 GSP RPC
// timeout/error, 140 unrecovered ECC error.
var DefaultFatalXids = []uint32{48, 61, 62, 63, 64, 74, 79, 94, 95, 119, 120, 140}

// NVMLOptions configure the NVML probe. Zero fields take the defaults.
type NVMLOptions struct {
	// Root of the host's procfs for the System part of samples ("/").
	Root string
	// Device is the index of the GPU to watch (0).
	Device int
	// CallTimeout bounds each use of the library: Init, one Read, Close
	// (2s).
	CallTimeout time.Duration
	// EventWait is how long one wait on the event set lasts; Close waits at
	// most this long for the event loop (500ms).
	EventWait time.Duration
	// FatalXids (DefaultFatalXids).
	FatalXids []uint32
	// ThrottleReasonsThatCount (DefaultThrottleReasonsThatCount).
	ThrottleReasonsThatCount ThrottleReasons
	// Clock stamps samples and events (the system clock when nil).
	Clock clock.Clock
}

func (o NVMLOptions) withDefaults() NVMLOptions {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Second
	}
	if o.EventWait <= 0 {
		o.EventWait = 500 * time.Millisecond
	}
	if o.FatalXids == nil {
		o.FatalXids = DefaultFatalXids
	}
	if o.ThrottleReasonsThatCount == 0 {
		o.ThrottleReasonsThatCount = DefaultThrottleReasonsThatCount
	}
	o.Clock = clock.Or(o.Clock)
	return o
}

// NVML is the probe for a discrete GPU through NVIDIA's management library.
// Every library call runs on one dedicated worker goroutine and is bounded
// by CallTimeout; events (Xid, double-bit ECC) come from an event set on a
// goroutine of their own.
type NVML struct {
	opts   NVMLOptions
	lib    nvmlLib
	dev    nvmlDev
	set    nvmlEventSet // nil when events are not supported
	uuid   string
	w      *worker
	events chan Event
	stop   chan struct{}
	evDone chan struct{}

	life   sync.RWMutex // Read holds it shared, Close exclusively
	closed bool

	mu       sync.Mutex // guards what the event loop and Read share
	lost     bool
	xid      uint32
	xidFatal bool
	ecc      bool
	eccCount uint64
	eccKnown bool
	dropped  int
}

// NewNVML opens the NVML probe on the GPU opts.Device. Where the library or
// the GPU is missing it returns an error wrapping ErrUnavailable and nothing
// is left running.
func NewNVML(ctx context.Context, opts NVMLOptions) (*NVML, error) {
	return openNVML(ctx, realNVML(), opts)
}

func openNVML(ctx context.Context, lib nvmlLib, opts NVMLOptions) (*NVML, error) {
	opts = opts.withDefaults()
	p := &NVML{opts: opts, lib: lib, w: newWorker(), events: make(chan Event, 64),
		stop: make(chan struct{}), evDone: make(chan struct{})}
	var initCode nvmlCode
	if err := p.w.call(ctx, opts.CallTimeout, func() { initCode = lib.Init() }); err != nil {
		p.w.stop(ctx, 0)
		return nil, fmt.Errorf("nvml init: %w: %w", ErrUnavailable, err)
	}
	if initCode != nvmlSuccess {
		// Nothing else may be called after a failed Init.
		p.w.stop(ctx, 0)
		return nil, fmt.Errorf("nvml init: %w: %v (no NVIDIA driver or library here)", ErrUnavailable, initCode)
	}
	var openErr error
	err := p.w.call(ctx, opts.CallTimeout, func() { openErr = p.openDevice() })
	if err == nil {
		err = openErr
	}
	if err != nil {
		if !p.w.isStuck() {
			_ = p.w.call(ctx, opts.CallTimeout, func() {
				if p.set != nil {
					p.set.Free()
				}
				lib.Shutdown()
			})
		}
		p.w.stop(ctx, 0)
		return nil, fmt.Errorf("nvml: %w: %w", ErrUnavailable, err)
	}
	if p.set != nil {
		go p.eventLoop()
	} else {
		close(p.evDone)
	}
	return p, nil
}

// openDevice runs on the worker.
func (p *NVML) openDevice() error {
	n, c := p.lib.DeviceCount()
	if c != nvmlSuccess {
		return fmt.Errorf("device count: %v", c)
	}
	if p.opts.Device < 0 || p.opts.Device >= n {
		return fmt.Errorf("GPU %d: %d GPUs here", p.opts.Device, n)
	}
	dev, c := p.lib.Device(p.opts.Device)
	if c != nvmlSuccess {
		return fmt.Errorf("GPU %d: %v", p.opts.Device, c)
	}
	p.dev = dev
	p.uuid, _ = dev.UUID()
	if n, c := dev.UncorrectedECC(); c == nvmlSuccess {
		p.eccCount, p.eccKnown = n, true
	}
	set, c := p.lib.EventSetCreate()
	if c != nvmlSuccess {
		return nil // no events; samples still work
	}
	if dev.RegisterEvents(nvmlEventXidCritical|nvmlEventDoubleBitECC, set) != nvmlSuccess {
		// Some boards support only one of the two.
		okX := dev.RegisterEvents(nvmlEventXidCritical, set) == nvmlSuccess
		okE := dev.RegisterEvents(nvmlEventDoubleBitECC, set) == nvmlSuccess
		if !okX && !okE {
			set.Free()
			return nil
		}
	}
	p.set = set
	return nil
}

// Name is "nvml".
func (p *NVML) Name() string { return "nvml" }

// UUID of the watched GPU ("" if NVML did not say).
func (p *NVML) UUID() string { return p.uuid }

// Events reports Xid, double-bit ECC and GPU-lost events as they happen.
func (p *NVML) Events() <-chan Event { return p.events }

func (p *NVML) fatal(xid uint32) bool { return slices.Contains(p.opts.FatalXids, xid) }

func (p *NVML) eventLoop() {
	defer close(p.evDone)
	ms := uint32(p.opts.EventWait / time.Millisecond)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		e, c := p.set.Wait(ms)
		switch c {
		case nvmlSuccess:
			p.handleEvent(e)
		case nvmlErrTimeout:
		case nvmlErrGPUIsLost:
			p.mu.Lock()
			first := !p.lost
			p.lost = true
			p.mu.Unlock()
			if first {
				p.emit(Event{At: p.opts.Clock.Now(), Kind: EventGPULost, Detail: "event set wait: ERROR_GPU_IS_LOST"})
			}
			<-p.stop
			return
		default:
			// Unexpected failure: do not spin; try again after a wait.
			t := time.NewTimer(p.opts.EventWait)
			select {
			case <-p.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

func (p *NVML) handleEvent(e nvmlEvent) {
	now := p.opts.Clock.Now()
	if e.Type&nvmlEventXidCritical != 0 {
		xid := uint32(e.Data)
		fatal := p.fatal(xid)
		p.mu.Lock()
		p.xid, p.xidFatal = xid, p.xidFatal || fatal
		p.mu.Unlock()
		p.emit(Event{At: now, Kind: EventXid, Xid: xid, Fatal: fatal, Detail: fmt.Sprintf("Xid %d", xid)})
	}
	if e.Type&nvmlEventDoubleBitECC != 0 {
		p.mu.Lock()
		p.ecc = true
		p.mu.Unlock()
		p.emit(Event{At: now, Kind: EventECCDoubleBit, Fatal: true, Detail: "double-bit ECC error"})
	}
}

// emit never blocks: a full channel drops the event (it is still folded
// into the next sample) and counts it.
func (p *NVML) emit(e Event) {
	select {
	case p.events <- e:
	default:
		p.mu.Lock()
		p.dropped++
		p.mu.Unlock()
	}
}

type nvmlReading struct {
	lost              bool
	temp, slowdown    uint32
	reasons           uint64
	util              uint32
	memUsed, memTotal uint64
	powerMW           uint32
	ecc               uint64
	eccOK             bool
	errs              []error
}

// readDevice runs on the worker. Unsupported readings stay zero; a lost
// GPU ends the reading.
func (p *NVML) readDevice() nvmlReading {
	var r nvmlReading
	check := func(what string, c nvmlCode) bool {
		switch c {
		case nvmlSuccess:
			return true
		case nvmlErrGPUIsLost:
			r.lost = true
		case nvmlErrNotSupported, nvmlErrNoPermission:
		default:
			r.errs = append(r.errs, fmt.Errorf("nvml %s: %v", what, c))
		}
		return false
	}
	d := p.dev
	var c nvmlCode
	if r.temp, c = d.Temperature(); !check("temperature", c) && r.lost {
		return r
	}
	if r.slowdown, c = d.SlowdownThreshold(); !check("slowdown threshold", c) && r.lost {
		return r
	}
	if r.reasons, c = d.ClocksEventReasons(); !check("clocks event reasons", c) && r.lost {
		return r
	}
	if r.util, c = d.Utilization(); !check("utilization", c) && r.lost {
		return r
	}
	if r.memUsed, r.memTotal, c = d.Memory(); !check("memory", c) && r.lost {
		return r
	}
	if r.powerMW, c = d.PowerUsage(); !check("power", c) && r.lost {
		return r
	}
	r.ecc, c = d.UncorrectedECC()
	r.eccOK = check("uncorrected ECC", c)
	return r
}

// Read takes one reading of the GPU and the host. When the library does not
// answer within CallTimeout it returns a sample marked GPUSuspect with an
// error wrapping ErrTimeout (or ErrStuck while that call has not returned).
// A lost GPU is a reading, not an error: GPULost, and it stays lost.
func (p *NVML) Read(ctx context.Context) (Sample, error) {
	s := Sample{At: p.opts.Clock.Now(), Source: p.Name()}
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return s, ErrClosed
	}
	sys, sysErr := Procfs{Root: p.opts.Root}.Read()
	s.System = sys

	p.mu.Lock()
	lost := p.lost
	p.mu.Unlock()
	var gpuErr error
	var r nvmlReading
	if !lost {
		// The call writes into its own reading: one it overran may still
		// finish after Read has returned, and must not touch r then.
		got := new(nvmlReading)
		if err := p.w.call(ctx, p.opts.CallTimeout, func() { *got = p.readDevice() }); err != nil {
			s.GPUSuspect = true
			gpuErr = fmt.Errorf("nvml read GPU %d: %w", p.opts.Device, err)
		} else {
			r = *got
			lost = r.lost
			gpuErr = errors.Join(r.errs...)
		}
	}

	p.mu.Lock()
	if lost && !p.lost {
		p.lost = true
		p.mu.Unlock()
		p.emit(Event{At: s.At, Kind: EventGPULost, Detail: "ERROR_GPU_IS_LOST"})
		p.mu.Lock()
	}
	s.GPULost = p.lost
	s.Xid, s.XidFatal, s.ECCUncorrected = p.xid, p.xidFatal, p.ecc
	p.xid, p.xidFatal, p.ecc = 0, false, false
	if r.eccOK && !s.GPUSuspect {
		if p.eccKnown && r.ecc > p.eccCount {
			s.ECCUncorrected = true
		}
		p.eccCount, p.eccKnown = r.ecc, true
	}
	p.mu.Unlock()

	if !s.GPUSuspect && !s.GPULost {
		s.TemperatureC = float64(r.temp)
		s.SlowdownTempC = float64(r.slowdown)
		s.ThrottleReasons = ThrottleReasons(r.reasons)
		s.Throttled = s.ThrottleReasons&p.opts.ThrottleReasonsThatCount != 0
		s.UtilizationPct = float64(r.util)
		s.MemUsedBytes, s.MemTotalBytes = r.memUsed, r.memTotal
		s.PowerW = float64(r.powerMW) / 1000
	}
	return s, errors.Join(gpuErr, sysErr)
}

// Close stops the event loop, frees the event set and shuts the library
// down, each bounded (by the probe's own call bounds, and by ctx). If a
// call is stuck in the library it returns an error wrapping ErrStuck and
// leaves that goroutine to end when (if) the call returns.
func (p *NVML) Close(ctx context.Context) error {
	p.life.Lock()
	defer p.life.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	close(p.stop)
	var errs []error
	evEnded := false
	t := time.NewTimer(p.opts.EventWait + p.opts.CallTimeout)
	select {
	case <-p.evDone:
		evEnded = true
	case <-t.C:
		errs = append(errs, fmt.Errorf("nvml close: event wait did not return: %w", ErrStuck))
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("nvml close: event wait did not return before %w: %w", ctx.Err(), ErrStuck))
	}
	t.Stop()
	if evEnded {
		close(p.events)
		var code nvmlCode
		err := p.w.call(ctx, p.opts.CallTimeout, func() {
			if p.set != nil {
				p.set.Free()
			}
			code = p.lib.Shutdown()
		})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("nvml close: %w", err))
		case code != nvmlSuccess:
			errs = append(errs, fmt.Errorf("nvml shutdown: %v", code))
		}
	}
	if !p.w.stop(ctx, p.opts.CallTimeout) {
		errs = append(errs, fmt.Errorf("nvml close: a library call is still running: %w", ErrStuck))
	}
	return errors.Join(errs...)
}
