package hw

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func testOpts() NVMLOptions {
	return NVMLOptions{Root: "testdata/procfs", CallTimeout: 50 * time.Millisecond, EventWait: 5 * time.Millisecond}
}

func TestNVMLInitFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeNVML()
	f.initCode = nvmlErrLibraryNotFound
	p, err := openNVML(context.Background(), f, testOpts())
	if p != nil || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("openNVML = %v, %v; want ErrUnavailable", p, err)
	}
	if c := f.Calls(); !slices.Equal(c, []string{"Init"}) {
		t.Errorf("calls after a failed Init: %v", c)
	}
}

// TestNVMLRealLibraryAbsent runs the real go-nvml binding: there is no
// NVIDIA driver on the machines the tests run on.
func TestNVMLRealLibraryAbsent(t *testing.T) {
	p, err := NewNVML(context.Background(), testOpts())
	if err == nil {
		p.Close(context.Background())
		t.Skip("an NVIDIA GPU is present here")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("NewNVML without a driver: %v, want ErrUnavailable", err)
	}
}

func TestNVMLNoGPU(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeNVML()
	f.count = 0
	if _, err := openNVML(context.Background(), f, testOpts()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no GPU: %v", err)
	}
	if c := f.Calls(); c[len(c)-1] != "Shutdown" {
		t.Errorf("library not shut down: %v", c)
	}
}

func TestNVMLReadAndEvents(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeNVML()
	f.dev.reasons = uint64(ThrottleSWPowerCap)
	p, err := openNVML(context.Background(), f, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := p.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != "nvml" || s.TemperatureC != 65 || s.SlowdownTempC != 90 || s.UtilizationPct != 77 ||
		s.MemUsedBytes != 3<<30 || s.MemTotalBytes != 16<<30 || s.PowerW != 123.456 || s.System.CPUs != 2 {
		t.Errorf("sample %+v", s)
	}
	if s.Throttled || s.GPULost || s.Xid != 0 || s.ECCUncorrected {
		t.Errorf("healthy GPU read as unhealthy: %+v", s)
	}

	// Hardware slowdown counts; an ECC counter that rises is uncorrected.
	f.mu.Lock()
	f.dev.reasons = uint64(ThrottleHWSlowdown | ThrottleSWPowerCap)
	f.dev.ecc = 1
	f.mu.Unlock()
	s, _ = p.Read(ctx)
	if !s.Throttled || !slices.Equal(s.ThrottleReasons.Names(), []string{"sw_power_cap", "hw_slowdown"}) || !s.ECCUncorrected {
		t.Errorf("throttle/ECC sample %+v", s)
	}

	f.set.events <- nvmlEvent{Type: nvmlEventXidCritical, Data: 13}
	f.set.events <- nvmlEvent{Type: nvmlEventXidCritical, Data: 79}
	f.set.events <- nvmlEvent{Type: nvmlEventDoubleBitECC}
	var got []Event
	for len(got) < 3 {
		select {
		case e := <-p.Events():
			got = append(got, e)
		case <-time.After(2 * time.Second):
			t.Fatalf("events %+v", got)
		}
	}
	if got[0].Kind != EventXid || got[0].Xid != 13 || got[0].Fatal || got[1].Xid != 79 || !got[1].Fatal || got[2].Kind != EventECCDoubleBit {
		t.Errorf("events %+v", got)
	}
	s, _ = p.Read(ctx)
	if s.Xid != 79 || !s.XidFatal || !s.ECCUncorrected {
		t.Errorf("events not folded into the sample: %+v", s)
	}
	if s, _ = p.Read(ctx); s.Xid != 0 || s.XidFatal || s.ECCUncorrected {
		t.Errorf("events folded twice: %+v", s)
	}

	f.mu.Lock()
	f.dev.tempCode = nvmlErrGPUIsLost
	f.mu.Unlock()
	if s, err = p.Read(ctx); !s.GPULost || err != nil {
		t.Errorf("lost GPU: %+v, %v", s, err)
	}
	if e := <-p.Events(); e.Kind != EventGPULost {
		t.Errorf("event %+v", e)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.set.freed || f.Calls()[len(f.Calls())-1] != "Shutdown" {
		t.Errorf("close: calls %v, set freed %v", f.Calls(), f.set.freed)
	}
	if _, err := p.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

func TestNVMLBlockedCall(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeNVML()
	p, err := openNVML(context.Background(), f, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	f.mu.Lock()
	f.dev.block = block
	f.mu.Unlock()
	ctx := context.Background()
	start := time.Now()
	s, err := p.Read(ctx)
	if !errors.Is(err, ErrTimeout) || !s.GPUSuspect || s.System.CPUs != 2 {
		t.Fatalf("blocked read: %+v, %v", s, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("blocked read took %v", d)
	}
	g := runtime.NumGoroutine()
	for range 20 {
		start = time.Now()
		if s, err := p.Read(ctx); !errors.Is(err, ErrStuck) || !s.GPUSuspect {
			t.Fatalf("read while stuck: %+v, %v", s, err)
		}
		if d := time.Since(start); d > 20*time.Millisecond {
			t.Errorf("read while stuck waited %v", d)
		}
	}
	if n := runtime.NumGoroutine(); n > g {
		t.Errorf("goroutines piled up: %d, then %d", g, n)
	}
	f.mu.Lock()
	f.dev.block = nil
	f.mu.Unlock()
	close(block)
	deadline := time.Now().Add(2 * time.Second)
	for {
		s, err := p.Read(ctx)
		if err == nil && !s.GPUSuspect && s.TemperatureC == 65 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe did not recover: %+v, %v", s, err)
		}
		runtime.Gosched()
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestNVMLCloseHonoursCtx: with a library call stuck, Close returns as
// soon as its ctx ends, with an error wrapping ErrStuck, instead of
// waiting out its own bounds; once the call returns, no goroutine is
// left behind.
func TestNVMLCloseHonoursCtx(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeNVML()
	opts := testOpts()
	opts.CallTimeout = 2 * time.Second
	p, err := openNVML(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	f.mu.Lock()
	f.dev.block = block
	f.mu.Unlock()
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	p.Read(rctx) //nolint:errcheck // leaves the worker stuck in the library
	rcancel()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Close(ctx)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a 50 ms ctx and a 2 s call bound", d)
	}
	if !errors.Is(err, ErrStuck) {
		t.Errorf("Close with a stuck call: %v, want ErrStuck", err)
	}
	f.mu.Lock()
	f.dev.block = nil
	f.mu.Unlock()
	close(block) // the stuck call returns and its goroutine ends (goleak waits for it)
}
