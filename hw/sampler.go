package hw

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
)

// SamplerConfig configures a Sampler.
type SamplerConfig struct {
	Probe    Probe
	Interval time.Duration
	// OnSample gets each reading with the probe's error (the sample is
	// still filled as far as it could be). It runs on the sampling
	// goroutine and must not block for long.
	OnSample func(Sample, error)
	// OnEvent gets the probe's events, if it is an EventSource, on a
	// goroutine of its own; it must not block for long.
	OnEvent func(Event)
	// Clock gives the sampler its ticks; nil means the system clock.
	// (Samples are stamped by the probe.)
	Clock clock.Clock
}

// Sampler reads a Probe on an interval on its own goroutine and forwards
// its events. It owns the probe: Close closes it.
type Sampler struct {
	cfg    SamplerConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	state  int // 0 new, 1 started, 2 closed
}

// NewSampler checks the configuration.
func NewSampler(cfg SamplerConfig) (*Sampler, error) {
	if cfg.Probe == nil {
		return nil, errors.New("hw sampler: Probe is nil")
	}
	if cfg.Interval <= 0 {
		return nil, errors.New("hw sampler: Interval must be positive")
	}
	if cfg.OnSample == nil {
		cfg.OnSample = func(Sample, error) {}
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	return &Sampler{cfg: cfg}, nil
}

// Start begins sampling: one reading at once, then one per Interval,
// until Close (ctx bounds the start only).
func (s *Sampler) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("hw sampler: start: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case 1:
		return errors.New("hw sampler: already started")
	case 2:
		return errors.New("hw sampler: start after Close")
	}
	s.state = 1
	loopCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	// The ticker is made here, so that a fake clock advanced right after
	// Start already has it.
	go s.loop(loopCtx, clock.Or(s.cfg.Clock).NewTicker(s.cfg.Interval))
	if es, ok := s.cfg.Probe.(EventSource); ok {
		s.wg.Add(1)
		go s.forward(loopCtx, es.Events())
	}
	return nil
}

func (s *Sampler) loop(ctx context.Context, t clock.Ticker) {
	defer s.wg.Done()
	defer t.Stop()
	for {
		smp, err := s.cfg.Probe.Read(ctx)
		if ctx.Err() != nil {
			return
		}
		s.cfg.OnSample(smp, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

func (s *Sampler) forward(ctx context.Context, ch <-chan Event) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			s.cfg.OnEvent(e)
		}
	}
}

// Close stops sampling, waits for the goroutines (at most until ctx ends)
// and closes the probe.
func (s *Sampler) Close(ctx context.Context) error {
	s.mu.Lock()
	st := s.state
	s.state = 2
	s.mu.Unlock()
	if st == 2 {
		return nil
	}
	if st == 1 {
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return errors.Join(errors.New("hw sampler: close: probe did not return"), ctx.Err(), s.cfg.Probe.Close(ctx))
		}
	}
	return s.cfg.Probe.Close(ctx)
}
