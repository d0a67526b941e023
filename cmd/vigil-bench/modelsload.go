package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
)

// streamWorkers answer the stream's frames; a frame that finds every one
// busy is dropped, and counts as missed, as a camera does not wait.
const streamWorkers = 4

// frameRecord is one frame of the stream.
type frameRecord struct {
	sent     time.Time
	latency  time.Duration // from sent until the answer; 0 when dropped
	late     bool          // answered after its deadline
	noResult bool
	dropped  bool
	served   watchdog.Backend // when answered with a result
}

func (r frameRecord) missed() bool { return r.late || r.noResult || r.dropped }

// frameStream sends frames through a router at a fixed rate, each with a
// deadline from when it was sent, from a goroutine of its own, until end.
type frameStream struct {
	router   *inference.Router
	period   time.Duration
	deadline time.Duration
	inputs   [][]float32
	work     chan int
	stop     chan struct{}
	wg       sync.WaitGroup

	mu     sync.Mutex
	frames []frameRecord
	err    error // the first error of Infer: a request it refused to take
}

// startFrameStream starts the stream; be gives the contract's tensors.
func startFrameStream(r *inference.Router, be *inference.Backend, rate float64, deadline time.Duration) *frameStream {
	s := &frameStream{router: r, period: time.Duration(float64(time.Second) / rate), deadline: deadline,
		inputs: randomFrames(16, be.Info().Model.Inputs[0].Size), work: make(chan int, streamWorkers), stop: make(chan struct{})}
	for range streamWorkers {
		s.wg.Add(1)
		go s.worker(be.NewInputs(), be.NewOutputs())
	}
	s.wg.Add(1)
	go s.produce()
	return s
}

// produce sends a frame every period until stop.
func (s *frameStream) produce() {
	defer s.wg.Done()
	defer close(s.work)
	next := time.Now()
	for {
		s.mu.Lock()
		i := len(s.frames)
		s.frames = append(s.frames, frameRecord{sent: time.Now()})
		s.mu.Unlock()
		select {
		case s.work <- i:
		default:
			s.mu.Lock()
			s.frames[i].dropped = true
			s.mu.Unlock()
		}
		next = next.Add(s.period)
		t := time.NewTimer(time.Until(next))
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *frameStream) worker(in, out []inference.Tensor) {
	defer s.wg.Done()
	var ans inference.Answer
	for i := range s.work {
		s.mu.Lock()
		sent := s.frames[i].sent
		s.mu.Unlock()
		copy(in[0].Data, s.inputs[i%len(s.inputs)])
		deadline := sent.Add(s.deadline)
		err := s.router.Infer(context.Background(), deadline, in, out, &ans)
		at := time.Now()
		s.mu.Lock()
		f := &s.frames[i]
		f.latency, f.late = at.Sub(sent), at.After(deadline)
		f.noResult = err != nil || ans.Status != inference.StatusOK
		f.served = ans.ServedBy
		if err != nil && s.err == nil {
			s.err = fmt.Errorf("frame %d: infer: %w", i, err)
		}
		s.mu.Unlock()
	}
}

// end stops the stream, waits for the answers in flight and returns every
// frame, or the first error Infer returned.
func (s *frameStream) end() ([]frameRecord, error) {
	close(s.stop)
	s.wg.Wait()
	return s.frames, s.err
}

// phaseStats are the figures of the frames of one phase.
type phaseStats struct {
	frames, missed, late, noResult, dropped int
	served                                  [watchdog.NumBackends]int
	latencies                               []time.Duration
}

func (p *phaseStats) add(r frameRecord) {
	p.frames++
	if r.missed() {
		p.missed++
	}
	switch {
	case r.dropped:
		p.dropped++
		return
	case r.noResult:
		p.noResult++
	default:
		p.served[r.served]++
	}
	if r.late {
		p.late++
	}
	p.latencies = append(p.latencies, r.latency)
}

// line is the phase's row of the swap table.
func (p *phaseStats) line(name string, replace, load string) string {
	lat := slices.Clone(p.latencies)
	maxLat := time.Duration(0)
	if len(lat) > 0 {
		maxLat = slices.Max(lat)
	}
	return fmt.Sprintf("%-12s %6d %6d %5d %9d %7d %7d %6d %8d %7.2f %7.2f %7.2f %10s %8s",
		name, p.frames, p.missed, p.late, p.noResult, p.dropped, p.served[watchdog.Primary], p.served[watchdog.Shadow], p.served[watchdog.Degraded],
		ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)), ms(maxLat), replace, load)
}

// phaseHeader heads the swap table.
func phaseHeader() string {
	return fmt.Sprintf("%-12s %6s %6s %5s %9s %7s %7s %6s %8s %7s %7s %7s %10s %8s",
		"phase", "frames", "missed", "late", "no_result", "dropped", "primary", "shadow", "degraded", "p50_ms", "p99_ms", "max_ms", "replace_ms", "load_ms")
}
