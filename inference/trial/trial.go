package trial

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
)

// Trial runs a candidate model beside a live rung on a sample of the
// requests that rung serves, never serving the candidate's answers. It is
// an inference.Tap: install it with Router.SetTap between Start and Stop.
type Trial struct {
	cfg     Config // with defaults
	rung    watchdog.Backend
	cand    inference.Runner
	owned   *inference.Backend // loaded by Load; Stop closes it
	sampler sampler

	// The hand-off: one job, in free while the candidate may take a
	// request, in work (or the loop's hands) otherwise.
	free, work chan *job

	running                atomic.Bool // the tap takes requests
	seen, sampled, dropped atomic.Uint64

	mu    sync.Mutex // guards tally
	tally tally

	life    sync.Mutex // guards what follows; never held by the loop
	started bool
	stopped bool // Stop has begun: no Start any more
	loopEnd bool // the loop has returned
	cancel  context.CancelFunc
	done    chan struct{} // closed when the loop returns
}

// job is the trial's copy of one sampled request, and the candidate's
// outputs for it.
type job struct {
	in, served, out []inference.Tensor
	budget          time.Duration
}

// ErrStopped is returned by Start after Stop.
var ErrStopped = errors.New("trial: stopped")

// Load loads the candidate from model (a model file on a provider, with
// its threads, as for any backend) and returns a trial that owns it: Stop
// closes it. live is the model the candidate would replace (Router.Backend
// (rung).Info().Model, or any rung's: they share the contract), whose
// inputs and outputs the candidate must take and give. Nothing is loaded
// when cfg is not valid.
func Load(cfg Config, model inference.Config, live inference.ModelInfo) (*Trial, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	be, err := inference.Load(model)
	if err != nil {
		return nil, fmt.Errorf("trial: load candidate: %w", err)
	}
	t, err := New(cfg, be, live)
	if err != nil {
		if cerr := be.Close(context.Background()); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	t.owned = be
	return t, nil
}

// New returns a trial of a candidate the caller loaded (for instance a
// *Backend behind an inference.Faulty, for drills) and closes after Stop.
// See Load for live.
func New(cfg Config, candidate inference.Runner, live inference.ModelInfo) (*Trial, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if candidate == nil {
		return nil, errors.New("trial: no candidate given")
	}
	cfg = cfg.withDefaults()
	rung, _ := watchdog.ParseBackend(cfg.Rung) // Validate checked it
	info := candidate.Info()
	if err := sameContract(info.Model, live); err != nil {
		return nil, fmt.Errorf("trial: candidate %s (model %s) does not fit the live %s model %s: %w", info.Name, info.Model.Path, rung, live.Path, err)
	}
	t := &Trial{
		cfg: cfg, rung: rung, cand: candidate, sampler: newSampler(cfg.SampleRate),
		free: make(chan *job, 1), work: make(chan *job, 1), done: make(chan struct{}),
	}
	t.free <- &job{in: buffers(live.Inputs), served: buffers(live.Outputs), out: buffers(live.Outputs)}
	return t, nil
}

// Candidate describes the candidate backend.
func (t *Trial) Candidate() inference.Info { return t.cand.Info() }

// Start starts the trial's goroutine and lets the tap take requests.
func (t *Trial) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("trial: start: %w", err)
	}
	t.life.Lock()
	defer t.life.Unlock()
	switch {
	case t.stopped:
		return ErrStopped
	case t.started:
		return errors.New("trial: already started")
	}
	t.started = true
	loopCtx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.running.Store(true)
	go t.loop(loopCtx)
	return nil
}

// Stop stops taking requests, abandons a candidate run in flight (its
// sample is not counted) and waits for the trial's goroutine; then it
// closes the candidate if Load loaded it. When ctx ends first it says
// what is left, and a later Stop carries on. Stats stay readable.
func (t *Trial) Stop(ctx context.Context) error {
	t.running.Store(false)
	t.life.Lock()
	defer t.life.Unlock()
	t.stopped = true
	if t.started && !t.loopEnd {
		t.cancel()
		select {
		case <-t.done:
			t.loopEnd = true
		case <-ctx.Done():
			return fmt.Errorf("trial: stop: the candidate's run has not returned: %w", ctx.Err())
		}
	}
	if t.owned != nil {
		if err := t.owned.Close(ctx); err != nil {
			return fmt.Errorf("trial: stop: %w", err)
		}
	}
	return nil
}

// Answered is the tap (inference.Tap): it picks the sampled requests the
// rung served and hands each to the trial's goroutine if the candidate is
// free to take it, or drops it. It copies the sampled request's tensors,
// and only those; it never waits.
func (t *Trial) Answered(a inference.Tapped) {
	if a.ServedBy != t.rung || !t.running.Load() {
		return
	}
	if !t.sampler.picks(t.seen.Add(1)) {
		return
	}
	t.sampled.Add(1)
	select {
	case j := <-t.free:
		j.budget = a.Deadline.Sub(a.Arrived)
		copyTensors(j.in, a.In)
		copyTensors(j.served, a.Out)
		t.work <- j // holds the only job: never full here
	default:
		t.dropped.Add(1)
	}
}

// Stats returns the trial's account so far.
func (t *Trial) Stats() Stats {
	t.mu.Lock()
	st := t.tally.snapshot()
	t.mu.Unlock()
	st.Seen, st.Sampled, st.Dropped = t.seen.Load(), t.sampled.Load(), t.dropped.Load()
	return st
}

// loop runs the candidate on each handed-off request, then holds the job
// until the cost cap lets the next run start.
func (t *Trial) loop(ctx context.Context) {
	defer close(t.done)
	rest := time.NewTimer(time.Hour)
	rest.Stop()
	defer rest.Stop()
	for {
		var j *job
		select {
		case <-ctx.Done():
			return
		case j = <-t.work:
		}
		start := time.Now()
		s := t.try(ctx, j, start)
		if ctx.Err() != nil {
			return // stopped mid-run: not the candidate's doing
		}
		t.record(s)
		rest.Reset(time.Until(t.cfg.nextStart(start, s.Latency)))
		select {
		case <-ctx.Done():
			return
		case <-rest.C:
		}
		t.free <- j
	}
}

// errCrashed stands for a panic in the candidate's run.
var errCrashed = errors.New("candidate run panicked")

// try runs the candidate on j with its own deadline and judges the run.
func (t *Trial) try(ctx context.Context, j *job, start time.Time) Sample {
	timeout := t.cfg.RunTimeout
	if timeout == 0 {
		timeout = 2 * j.budget
	}
	s := Sample{At: start, Budget: j.budget}
	err := t.run(ctx, start.Add(timeout), j)
	s.Latency = time.Since(start)
	s.OverBudget = s.Latency > s.Budget
	switch {
	case errors.Is(err, errCrashed):
		s.Err = ErrCrashed
	default:
		s.Err = kindOf(err)
	}
	if err != nil {
		s.Detail = err.Error()
		return s
	}
	s.MaxAbsDiff, s.Within = compare(j.out, j.served, t.cfg.Tolerance)
	return s
}

// run runs the candidate, turning a panic into an error.
func (t *Trial) run(ctx context.Context, deadline time.Time, j *job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errCrashed, p)
		}
	}()
	_, err = t.cand.Run(ctx, deadline, j.in, j.out)
	return err
}

// record counts s and reports it.
func (t *Trial) record(s Sample) {
	t.mu.Lock()
	s.Seq = t.tally.st.Samples + 1
	t.tally.add(s)
	t.mu.Unlock()
	if t.cfg.OnSample != nil {
		t.cfg.OnSample(s)
	}
}
