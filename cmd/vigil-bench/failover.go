package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-av/vigil/agent"
	"github.com/vigil-av/vigil/hw"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/watchdog"
	"github.com/vigil-av/vigil/watchdog/shell"
)

type failoverFlags struct {
	models   string
	library  string
	gpu      string
	rate     float64
	deadline time.Duration
	cycles   int
	policies string
	quick    bool
	// isolation of primary and shadow; workerMB their workers' memory
	// limit.
	isolation inference.Isolation
	workerMB  int
}

// A scenario is one phase of the schedule: a fault injected at its start,
// held for hold frames, cleared, then recover frames to let the watchdog
// bring everything back.
type scenario struct {
	name    string
	fault   func(l *benchLadder) // nil: no fault
	hold    int
	recover int
	// target is the backend whose failure detection is timed.
	target watchdog.Backend
	// allRungs marks the scenario in which every rung is faulted: NO_RESULT
	// is expected there, and it is reported apart from the policy's totals.
	allRungs bool
	// worker marks the worker scenarios (failoverworker.go).
	worker bool
}

func runFailover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f failoverFlags
	fs := flag.NewFlagSet("vigil-bench failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.models, "models", "", "directory with primary.onnx, shadow.onnx and degraded.onnx (default: build/models if present, else the demo models generated into a temporary directory)")
	fs.StringVar(&f.library, "ort-library", "", "ONNX Runtime shared library (default: $"+inference.LibraryEnv+" or the one `make deps` fetched)")
	fs.StringVar(&f.gpu, "gpu-provider", "cpu", "provider of the primary and shadow: cpu, cuda:N or tensorrt:N (the degraded model always runs on the CPU)")
	fs.Float64Var(&f.rate, "rate", 30, "frames per second")
	fs.DurationVar(&f.deadline, "deadline", 33*time.Millisecond, "deadline of each frame")
	fs.IntVar(&f.cycles, "cycles", 2, "times the fault schedule runs for each policy")
	fs.StringVar(&f.policies, "policies", "hot,warm,cold", "policies to run, comma-separated")
	isolation := fs.String("isolation", "process", "isolation of primary and shadow: process (each in a worker process; adds the worker scenarios: wedge, crash, leak) or in-process")
	fs.IntVar(&f.workerMB, "worker-memory-mb", 512, "memory limit of each worker process (the leak scenario runs into it)")
	fs.BoolVar(&f.quick, "quick", false, "a short run (under 60 s): 100 frames/s, a watchdog with short cool-down and probation, two cycles for hot and one for warm and cold")
	if err := parseSuite(fs, "failover", `Drives the three real models through the router and the watchdog at a fixed
frame rate, injecting faults on a schedule (primary hang, error burst, latency
spikes, NaN, GPU lost, shadow errors, and every rung at once), for each
policy. Per scenario it prints frames, deadline misses, NO_RESULT, who
served, latency percentiles, detection time (fault injected → backend
failed) and failover time (request → answer from a lower rung).`, args, stderr); err != nil {
		return err
	}
	if f.quick {
		f.rate = 100
	}
	if f.rate <= 0 || f.rate > 1000 {
		return fmt.Errorf("--rate %v: want 0 < rate ≤ 1000", f.rate)
	}
	if f.deadline <= 0 {
		return fmt.Errorf("--deadline %v: must be positive", f.deadline)
	}
	f.isolation = inference.Isolation(*isolation)
	if f.isolation != inference.Process && f.isolation != inference.InProcess {
		return fmt.Errorf("--isolation %q: want process or in-process", *isolation)
	}
	if f.workerMB < 64 {
		return fmt.Errorf("--worker-memory-mb %d: want at least 64", f.workerMB)
	}
	var policies []watchdog.Policy
	for _, s := range strings.Split(f.policies, ",") {
		p, err := watchdog.ParsePolicy(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--policies: %w", err)
		}
		policies = append(policies, p)
	}
	gpu, err := inference.ParseProvider(f.gpu)
	if err != nil {
		return fmt.Errorf("--gpu-provider: %w", err)
	}
	if err := inference.Init(f.library); err != nil {
		return err
	}
	dir, cleanup, err := benchModelDir(f.models)
	if err != nil {
		return err
	}
	defer cleanup()

	var backends [watchdog.NumBackends]*inference.Backend
	for b, role := range demo.Roles {
		cfg := inference.Config{Name: role, ModelPath: dir + "/" + demo.FileName(role)}
		if role != demo.RoleDegraded {
			cfg.Provider, cfg.Isolation = gpu, f.isolation
			cfg.Worker.MemoryLimitMB = f.workerMB
		}
		be, err := inference.Load(cfg)
		if err != nil {
			return err
		}
		defer be.Close(context.Background())
		backends[b] = be
	}
	fmt.Fprintf(stdout, "suite failover: %s at %.0f frames/s, deadline %v, primary and shadow on %s, %s\n", dir, f.rate, f.deadline, gpu, f.isolation)
	for _, p := range policies {
		cycles := f.cycles
		if f.quick {
			cycles = 1
			if p == watchdog.Hot {
				cycles = 2
			}
		}
		if err := runPolicy(ctx, stdout, f, p, cycles, backends); err != nil {
			return err
		}
	}
	return nil
}

// benchModelDir finds the directory of the three demo models.
func benchModelDir(flagDir string) (string, func(), error) {
	if flagDir != "" {
		return flagDir, func() {}, nil
	}
	p, cleanup, err := benchModel("")
	if err != nil {
		return "", nil, err
	}
	return p[:strings.LastIndexByte(p, '/')], cleanup, nil
}

// benchLadder is one policy's router, watchdog and fault injectors.
type benchLadder struct {
	faults [watchdog.NumBackends]*inference.Faulty
	router *inference.Router
	shell  *shell.Shell

	mu     sync.Mutex
	failed [watchdog.NumBackends]time.Time // when each backend first became failed since resetFailed
}

func (l *benchLadder) resetFailed() {
	l.mu.Lock()
	l.failed = [watchdog.NumBackends]time.Time{}
	l.mu.Unlock()
}

func watchdogConfig(f failoverFlags, p watchdog.Policy) watchdog.Config {
	cfg := watchdog.DefaultConfig()
	cfg.Policy = p
	cfg.Deadline = f.deadline
	// The schedule packs a fault every few seconds, far more often than a
	// vehicle sees them; the default cap of 4 switches a minute would keep
	// recovered backends out for the rest of the minute. The cap itself is
	// exercised by the watchdog's flapping scenarios.
	cfg.MaxSwitchesPerMinute = 60
	if f.quick {
		cfg.CoolDown = 300 * time.Millisecond
		cfg.CanaryInterval = 50 * time.Millisecond
		cfg.CanaryCount = 4
		cfg.CanaryMinSpan = 300 * time.Millisecond
		cfg.ArbitrateFor = 500 * time.Millisecond
	}
	return cfg
}

func newBenchLadder(f failoverFlags, p watchdog.Policy, backends [watchdog.NumBackends]*inference.Backend) (*benchLadder, error) {
	l := &benchLadder{}
	var runners [watchdog.NumBackends]inference.Runner
	for b, be := range backends {
		l.faults[b] = inference.NewFaulty(be)
		runners[b] = l.faults[b]
	}
	m, err := watchdog.New(watchdogConfig(f, p))
	if err != nil {
		return nil, err
	}
	fwd := &forwarder{}
	l.router, err = inference.NewRouter(inference.RouterConfig{Requests: 16}, runners, fwd)
	if err != nil {
		return nil, err
	}
	l.shell = shell.New(shell.Config{Tick: 5 * time.Millisecond, OnReady: func(now time.Time, rd watchdog.Ready) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, t := range rd.Transitions {
			if t.To == watchdog.Failed && l.failed[t.Backend].IsZero() {
				l.failed[t.Backend] = t.At
			}
		}
	}}, m, l.router)
	fwd.s = l.shell
	if err := l.shell.Start(context.Background()); err != nil {
		l.router.Close(context.Background())
		return nil, err
	}
	return l, nil
}

func (l *benchLadder) close() error {
	for _, f := range l.faults {
		f.Clear()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(l.router.Close(ctx), l.shell.Close(ctx))
}

func (l *benchLadder) failedAt(b watchdog.Backend) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed[b]
}

type forwarder struct{ s *shell.Shell }

func (f *forwarder) ReportRun(x watchdog.RunResult)         { f.s.ReportRun(x) }
func (f *forwarder) ReportRequest(x watchdog.RequestResult) { f.s.ReportRequest(x) }
func (f *forwarder) ReportComparison(x watchdog.Comparison) { f.s.ReportComparison(x) }
func (f *forwarder) ReportVote(x watchdog.Vote)             { f.s.ReportVote(x) }

func inject(b watchdog.Backend, ft inference.Fault) func(*benchLadder) {
	return func(l *benchLadder) { l.faults[b].Inject(ft) }
}

// hwFault plays a one-step script through the fake probe and hands its
// reading to the watchdog as the daemon does.
func hwFault(l *benchLadder, x hw.Sample) {
	hw.Script{{Sample: x}}.Play(context.Background(), func(x hw.Sample) { l.shell.Health(agent.HealthSample(x)) })
}

func schedule(f failoverFlags) []scenario {
	hold, rec := 150, 150 // frames: 5 s each at 30 frames/s
	if f.quick {
		hold, rec = 60, 90
	}
	return append(append([]scenario{
		{name: "baseline", hold: hold / 2},
		{name: "primary-hang", fault: inject(watchdog.Primary, inference.Fault{Kind: inference.FaultHang}), hold: hold, recover: rec},
		{name: "primary-stuck", fault: inject(watchdog.Primary, inference.Fault{Kind: inference.FaultStuck}), hold: hold, recover: rec},
		{name: "primary-errors", fault: inject(watchdog.Primary, inference.Fault{Kind: inference.FaultError}), hold: hold, recover: rec},
		{name: "primary-spikes", fault: inject(watchdog.Primary, inference.Fault{Kind: inference.FaultLatency, Latency: 2 * f.deadline, Probability: 0.5}), hold: hold, recover: rec},
		{name: "primary-nan", fault: inject(watchdog.Primary, inference.Fault{Kind: inference.FaultNaN}), hold: hold, recover: rec},
		{name: "primary-wrong", fault: inject(watchdog.Primary, inference.Fault{Kind: inference.FaultWrong, Offset: 0.8}), hold: hold, recover: rec},
		{name: "gpu-lost", fault: func(l *benchLadder) { hwFault(l, hw.Sample{GPULost: true}) }, hold: hold, recover: rec},
		{name: "shadow-errors", fault: inject(watchdog.Shadow, inference.Fault{Kind: inference.FaultError}), hold: hold, recover: rec, target: watchdog.Shadow},
	}, workerScenarios(f)...), scenario{name: "all-rungs", fault: func(l *benchLadder) {
		l.faults[watchdog.Primary].Inject(inference.Fault{Kind: inference.FaultHang})
		l.faults[watchdog.Shadow].Inject(inference.Fault{Kind: inference.FaultError})
		l.faults[watchdog.Degraded].Inject(inference.Fault{Kind: inference.FaultNaN})
	}, hold: hold, recover: 2 * rec, allRungs: true})
}

// frameStats accumulates one scenario's frames.
type frameStats struct {
	mu        sync.Mutex
	frames    int
	missed    int // answered after the deadline, or never started (driver overrun)
	noResult  int
	served    [watchdog.NumBackends]int
	latencies []time.Duration
	failover  time.Duration // longest request → answer from below the active rung
}

func (s *frameStats) add(ans *inference.Answer, late bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames++
	if late {
		s.missed++
	}
	if ans.Status == inference.StatusOK {
		s.served[ans.ServedBy]++
		if ans.ServedBy != watchdog.Primary {
			s.failover = max(s.failover, ans.Latency)
		}
	} else {
		s.noResult++
	}
	s.latencies = append(s.latencies, ans.Latency)
}

func (s *frameStats) merge(o *frameStats) {
	s.frames += o.frames
	s.missed += o.missed
	s.noResult += o.noResult
	for b := range s.served {
		s.served[b] += o.served[b]
	}
	s.latencies = append(s.latencies, o.latencies...)
	s.failover = max(s.failover, o.failover)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runPolicy(ctx context.Context, w io.Writer, f failoverFlags, p watchdog.Policy, cycles int, backends [watchdog.NumBackends]*inference.Backend) error {
	l, err := newBenchLadder(f, p, backends)
	if err != nil {
		return err
	}
	defer l.close()
	d := newDriver(l.router, backends[watchdog.Degraded], f)
	defer d.stop()

	fmt.Fprintf(w, "\npolicy %s\n", p)
	fmt.Fprintf(w, "%-15s %6s %6s %9s %7s %6s %8s %7s %7s %7s %9s %11s\n",
		"scenario", "frames", "missed", "no_result", "primary", "shadow", "degraded", "p50_ms", "p99_ms", "max_ms", "detect_ms", "failover_ms")
	var total, allRungs frameStats
	wt := newWorkerTally(backends)
	for c := range cycles {
		for _, sc := range schedule(f) {
			if err := ctx.Err(); err != nil {
				return err
			}
			var st frameStats
			l.resetFailed()
			injected := time.Now()
			ends := wt.ends(backends)
			if sc.fault != nil {
				sc.fault(l)
			}
			d.run(sc.hold, &st)
			if sc.worker {
				wt.holdUntilEnded(d, &st, backends, ends, sc.hold)
			}
			detect := "-"
			if sc.fault != nil && !sc.allRungs {
				if at := l.failedAt(sc.target); at.After(injected) {
					detect = fmt.Sprintf("%.1f", ms(at.Sub(injected)))
				}
			}
			for _, fl := range l.faults {
				fl.Clear()
			}
			if sc.name == "gpu-lost" {
				hwFault(l, hw.Sample{TemperatureC: 60})
			}
			d.run(sc.recover, &st)
			failover := "-"
			if st.failover > 0 {
				failover = fmt.Sprintf("%.1f", ms(st.failover))
			}
			lat := slices.Clone(st.latencies)
			name := sc.name
			if cycles > 1 {
				name = fmt.Sprintf("%s/%d", sc.name, c+1)
			}
			fmt.Fprintf(w, "%-15s %6d %6d %9d %7d %6d %8d %7.2f %7.2f %7.2f %9s %11s\n",
				name, st.frames, st.missed, st.noResult, st.served[0], st.served[1], st.served[2],
				ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)), ms(slices.Max(lat)), detect, failover)
			wt.observe(w, l, backends, sc)
			if sc.allRungs {
				allRungs.merge(&st)
			} else {
				total.merge(&st)
			}
		}
	}
	lat := slices.Clone(allRungs.latencies)
	fmt.Fprintf(w, "every rung faulted: %d frames, %d NO_RESULT, %d missed, slowest answer %.2f ms (deadline %v)\n",
		allRungs.frames, allRungs.noResult, allRungs.missed, ms(slices.Max(lat)), f.deadline)
	lat = slices.Clone(total.latencies)
	fmt.Fprintf(w, "RESULT suite=failover policy=%s frames=%d missed=%d no_result=%d p99_ms=%.2f max_failover_ms=%.2f worker_kills=%d worker_restart_ms=%.1f worker_recovered=%d/%d\n",
		p, total.frames, total.missed, total.noResult, ms(percentile(lat, 0.99)), ms(total.failover),
		wt.kills(backends), wt.restartMs(), wt.back, wt.scenes)
	return nil
}

// driver sends frames at a fixed rate; each frame is answered by one of a
// few workers so that a slow answer does not hold up the next frame, as a
// camera would not wait.
type driver struct {
	router *inference.Router
	period time.Duration
	budget time.Duration
	work   chan job
	wg     sync.WaitGroup
}

type job struct {
	st   *frameStats
	sent time.Time
	done *sync.WaitGroup
}

func newDriver(r *inference.Router, be *inference.Backend, f failoverFlags) *driver {
	d := &driver{router: r, period: time.Duration(float64(time.Second) / f.rate), budget: f.deadline, work: make(chan job, 8)}
	for i := range 8 {
		d.wg.Add(1)
		go d.worker(be, uint64(i))
	}
	return d
}

func (d *driver) worker(be *inference.Backend, seed uint64) {
	defer d.wg.Done()
	in, out := be.NewInputs(), be.NewOutputs()
	rng := rand.New(rand.NewPCG(seed, 7))
	var ans inference.Answer
	for j := range d.work {
		for i := range in[0].Data {
			in[0].Data[i] = rng.Float32()
		}
		deadline := j.sent.Add(d.budget)
		if err := d.router.Infer(context.Background(), deadline, in, out, &ans); err != nil {
			fmt.Fprintln(os.Stderr, "vigil-bench: infer:", err)
		}
		j.st.add(&ans, time.Now().After(deadline))
		j.done.Done()
	}
}

// run sends n frames and waits for their answers.
func (d *driver) run(n int, st *frameStats) {
	var done sync.WaitGroup
	next := time.Now()
	for range n {
		done.Add(1)
		j := job{st: st, sent: time.Now(), done: &done}
		select {
		case d.work <- j:
		default:
			// Every worker busy: the frame is dropped, which is a miss.
			st.mu.Lock()
			st.frames++
			st.missed++
			st.mu.Unlock()
			done.Done()
		}
		next = next.Add(d.period)
		time.Sleep(time.Until(next))
	}
	done.Wait()
}

func (d *driver) stop() {
	close(d.work)
	d.wg.Wait()
}
