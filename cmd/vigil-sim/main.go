// Command vigil-sim plays a vehicle supervisor against a running vigild:
// camera frames at a fixed rate with a deadline each, a drill fault injected
// and later cleared, a live view of which rung served each second, and a
// summary at the end. `make demo` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/cmd/internal/cli"
	"github.com/vigil-av/vigil/internal/version"
)

type options struct {
	socket   string
	rate     float64
	deadline time.Duration
	duration time.Duration
	fault    string
	backend  string
	faultAt  time.Duration
	clearAt  time.Duration
	quiet    bool
	shm      bool
}

func main() { cli.Main("vigil-sim", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("vigil-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := "/run/vigil/vigild.sock"
	if s := os.Getenv("VIGIL_SOCKET"); s != "" {
		sock = s
	}
	fs.StringVar(&o.socket, "socket", sock, "vigild's socket (or $VIGIL_SOCKET)")
	fs.Float64Var(&o.rate, "rate", 30, "camera frames per second")
	fs.DurationVar(&o.deadline, "deadline", 33*time.Millisecond, "deadline of each frame")
	fs.DurationVar(&o.duration, "duration", time.Minute, "how long to drive")
	fs.StringVar(&o.fault, "fault", "hang", "drill fault to inject (hang, stuck, latency, error, nan, wrong; none for no drill)")
	fs.StringVar(&o.backend, "fault-backend", "primary", "backend the fault goes into")
	fs.DurationVar(&o.faultAt, "fault-at", 0, "when to inject the fault (default: a quarter of --duration)")
	fs.DurationVar(&o.clearAt, "clear-at", 0, "when to clear it (default: 7/12 of --duration)")
	fs.BoolVar(&o.quiet, "quiet", false, "no live view, only the summary")
	fs.BoolVar(&o.shm, "shm", false, "send frames in shared memory: register a memfd pool of the 8 frames once, then name a frame in each request instead of carrying it (docs/protocol.md, \"Frames in shared memory\")")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vigil-sim [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Acts as a vehicle supervisor: reports the vehicle parked (drills need it),")
		fmt.Fprintln(stderr, "sends camera frames to vigild at --rate with a --deadline each, injects a drill")
		fmt.Fprintln(stderr, "fault at --fault-at and clears it at --clear-at, shows which rung served each")
		fmt.Fprintln(stderr, "second, and ends with a summary. It exits non-zero if any frame missed its")
		fmt.Fprintln(stderr, "deadline (no answer in time, or NO_RESULT).")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("vigil-sim", version.ONNXRuntime))
		return nil
	}
	if o.faultAt == 0 {
		o.faultAt = o.duration / 4
	}
	if o.clearAt == 0 {
		o.clearAt = o.duration * 7 / 12
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.rate <= 0 || o.rate > 1000:
		return fmt.Errorf("--rate %v: want 0 < rate ≤ 1000", o.rate)
	case o.deadline <= 0:
		return fmt.Errorf("--deadline %v: must be positive", o.deadline)
	case o.fault != "none" && !(o.faultAt < o.clearAt && o.clearAt < o.duration):
		return fmt.Errorf("--fault-at %v, --clear-at %v, --duration %v: want fault-at < clear-at < duration", o.faultAt, o.clearAt, o.duration)
	}
	backend, ok := map[string]client.Backend{"primary": client.Primary, "shadow": client.Shadow, "degraded": client.Degraded}[o.backend]
	if !ok {
		return fmt.Errorf("--fault-backend %q: want primary, shadow or degraded", o.backend)
	}
	c, err := client.Dial(o.socket)
	if err != nil {
		return err
	}
	defer c.Close()
	sim := &simulator{o: o, c: c, out: stdout, backend: backend}
	if o.shm {
		pool, err := c.RegisterPool(ctx, numFrames*frameBytes)
		if err != nil {
			return fmt.Errorf("--shm: %w", err)
		}
		defer pool.Close()
		sim.pool = pool
	}
	return sim.drive(ctx)
}

// The simulator's camera: numFrames random frames of frameBytes, sent in
// turn.
const (
	numFrames  = 8
	frameBytes = 4 * 3 * 66 * 200
)

type simulator struct {
	o       options
	c       *client.Client
	out     io.Writer
	backend client.Backend
	pool    *client.Pool // --shm: the frames, written once

	mu  sync.Mutex
	sec second  // the second being counted
	all summary // the whole run
	lat []time.Duration
}

type second struct {
	frames, missed, noResult int
	served                   [4]int // by client.Backend
	maxLatency               time.Duration
}

type summary struct {
	second
	faultAt, clearAt time.Time
	firstFailover    time.Duration // fault injected → first answer from another rung
	firstFailback    time.Duration // fault cleared → first answer from the faulted rung again
}

func (s *simulator) control(ctx context.Context, req client.ControlRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.c.Control(ctx, req)
}

func (s *simulator) drive(ctx context.Context) error {
	if err := s.control(ctx, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		return fmt.Errorf("report the vehicle parked: %w", err)
	}
	fmt.Fprintf(s.out, "vigil-sim: %.0f frames/s, deadline %v, %v; drill: %s on %s from %v to %v\n\n",
		s.o.rate, s.o.deadline, s.o.duration, s.o.fault, s.backend, s.o.faultAt, s.o.clearAt)
	if !s.o.quiet {
		fmt.Fprintf(s.out, "%5s %7s %7s %7s %8s %7s %9s %9s  %s\n", "t", "frames", "primary", "shadow", "degraded", "missed", "no_result", "max_ms", "event")
	}
	frames := make([][]float32, numFrames)
	for i := range frames {
		frames[i] = make([]float32, 3*66*200)
		for j := range frames[i] {
			frames[i][j] = rand.Float32()
		}
		if s.pool != nil {
			// Written before any request names them and never again, so
			// no frame changes while a request is in flight.
			if err := s.pool.PutFloat32(i*frameBytes, frames[i]); err != nil {
				return err
			}
		}
	}
	period := time.Duration(float64(time.Second) / s.o.rate)
	start := time.Now()
	tick := time.NewTicker(period)
	defer tick.Stop()
	report := time.NewTicker(time.Second)
	defer report.Stop()
	var wg sync.WaitGroup
	var event string
	faulted, cleared := false, false
	seq := uint64(0)
	defer s.control(context.Background(), client.ControlRequest{Op: client.OpDrillFault, Backend: s.backend, FaultKind: "none"})
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case now := <-report.C:
			s.printSecond(now.Sub(start), event)
			event = ""
		case now := <-tick.C:
			el := now.Sub(start)
			if el >= s.o.duration {
				wg.Wait()
				s.printSecond(el, event)
				return s.finish(ctx)
			}
			if s.o.fault != "none" && !faulted && el >= s.o.faultAt {
				faulted = true
				if err := s.control(ctx, client.ControlRequest{Op: client.OpDrillFault, Backend: s.backend, FaultKind: s.o.fault, Offset: 0.8, Latency: 2 * s.o.deadline}); err != nil {
					return fmt.Errorf("inject %s into %s: %w", s.o.fault, s.backend, err)
				}
				s.mu.Lock()
				s.all.faultAt = time.Now()
				s.mu.Unlock()
				event = fmt.Sprintf("drill: %s injected into %s", s.o.fault, s.backend)
			}
			if faulted && !cleared && el >= s.o.clearAt {
				cleared = true
				if err := s.control(ctx, client.ControlRequest{Op: client.OpDrillFault, Backend: s.backend, FaultKind: "none"}); err != nil {
					return fmt.Errorf("clear the drill: %w", err)
				}
				s.mu.Lock()
				s.all.clearAt = time.Now()
				s.mu.Unlock()
				event = fmt.Sprintf("drill: %s cleared", s.backend)
			}
			seq++
			wg.Add(1)
			go s.frame(ctx, &wg, seq, frames[seq%numFrames])
		}
	}
}

// frame sends one frame and counts its answer. A frame whose answer is not
// back by the deadline, or is NO_RESULT, is a miss for the supervisor.
func (s *simulator) frame(ctx context.Context, wg *sync.WaitGroup, seq uint64, data []float32) {
	defer wg.Done()
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, s.o.deadline+time.Second)
	defer cancel()
	in := client.Tensor{Name: "frame", DType: client.Float32, Shape: []int64{1, 3, 66, 200}, Float32: data}
	if s.pool != nil {
		in.Float32, in.Pool, in.Offset = nil, s.pool, int(seq%numFrames)*frameBytes
	}
	resp, err := s.c.Infer(rctx, &client.InferRequest{FrameSeq: seq, Budget: s.o.deadline, Inputs: []client.Tensor{in}})
	got := time.Now()
	rtt := got.Sub(sent)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range []*second{&s.sec, &s.all.second} {
		c.frames++
		c.maxLatency = max(c.maxLatency, rtt)
		switch {
		case err != nil:
			c.missed++
		case !resp.OK():
			c.noResult++
		default:
			if rtt > s.o.deadline {
				c.missed++
			}
			c.served[resp.ServedBy]++
		}
	}
	s.lat = append(s.lat, rtt)
	if err == nil && resp.OK() {
		a := &s.all
		if !a.faultAt.IsZero() && a.clearAt.IsZero() && a.firstFailover == 0 && resp.ServedBy != s.backend && sent.After(a.faultAt) {
			a.firstFailover = got.Sub(a.faultAt)
		}
		if !a.clearAt.IsZero() && a.firstFailback == 0 && resp.ServedBy == s.backend && sent.After(a.clearAt) {
			a.firstFailback = got.Sub(a.clearAt)
		}
	}
}

func (s *simulator) printSecond(t time.Duration, event string) {
	s.mu.Lock()
	sec := s.sec
	s.sec = second{}
	s.mu.Unlock()
	if s.o.quiet {
		return
	}
	fmt.Fprintf(s.out, "%4.0fs %7d %7d %7d %8d %7d %9d %9.2f  %s\n", t.Seconds(), sec.frames,
		sec.served[client.Primary], sec.served[client.Shadow], sec.served[client.Degraded],
		sec.missed, sec.noResult, float64(sec.maxLatency)/float64(time.Millisecond), event)
}

func (s *simulator) finish(ctx context.Context) error {
	s.mu.Lock()
	a := s.all
	lat := slices.Clone(s.lat)
	s.mu.Unlock()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*q))]) / float64(time.Millisecond)
	}
	fmt.Fprintf(s.out, "\nsummary: %d frames, %d missed deadlines, %d NO_RESULT\n", a.frames, a.missed, a.noResult)
	fmt.Fprintf(s.out, "served by primary %d, shadow %d, degraded %d\n", a.served[client.Primary], a.served[client.Shadow], a.served[client.Degraded])
	fmt.Fprintf(s.out, "round trip p50 %.2fms, p99 %.2fms, max %.2fms (deadline %v)\n", pct(0.5), pct(0.99), float64(a.maxLatency)/float64(time.Millisecond), s.o.deadline)
	if !a.faultAt.IsZero() {
		fmt.Fprintf(s.out, "drill %s on %s: first answer from another rung %.1fms after the injection", s.o.fault, s.backend, ms(a.firstFailover))
		if a.firstFailback > 0 {
			fmt.Fprintf(s.out, "; %s served again %.1fms after the clear (probation)", s.backend, ms(a.firstFailback))
		}
		fmt.Fprintln(s.out)
	}
	if raw, err := s.c.Status(ctx); err == nil {
		var st struct {
			Failover struct {
				LastReason string  `json:"last_reason"`
				MaxMs      float64 `json:"max_ms"`
			} `json:"failover"`
			Counters struct {
				Failovers uint64 `json:"failovers"`
				Failbacks uint64 `json:"failbacks"`
			} `json:"counters"`
		}
		if json.Unmarshal(raw, &st) == nil {
			fmt.Fprintf(s.out, "vigild: %d failovers, %d fail-backs, longest answer from a lower rung %.2fms; last failover: %s\n",
				st.Counters.Failovers, st.Counters.Failbacks, st.Failover.MaxMs, st.Failover.LastReason)
		}
	}
	if a.missed > 0 || a.noResult > 0 {
		return fmt.Errorf("%d frames missed their deadline and %d got NO_RESULT", a.missed, a.noResult)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
