package inference

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// Reporter receives what the router learns, for the watchdog. Its methods
// are called from the router's goroutines on the request path and must not
// block.
type Reporter interface {
	// ReportRequest gets the runs of one serving request together, once
	// every backend started for it is over, so that the watchdog can tell a
	// fault of the request from a fault of a backend.
	ReportRequest(watchdog.RequestResult)
	// ReportRun gets the answer to a canary probe (Canary set).
	ReportRun(watchdog.RunResult)
	ReportComparison(watchdog.Comparison)
	ReportVote(watchdog.Vote)
}

// Router answers requests with the backends the current watchdog plan names,
// by the request's deadline, and reports every result to the watchdog. Runs
// happen on lanes, goroutines owned by the router, so that the request path
// allocates nothing and never waits for a backend past the deadline.
type Router struct {
	cfg      RouterConfig
	backends [watchdog.NumBackends]Runner
	lanes    [watchdog.NumBackends]chan *request
	busy     [watchdog.NumBackends]atomic.Int32 // runs handed to each backend's lanes
	nlanes   [watchdog.NumBackends]int32
	rep      Reporter
	plan     atomic.Pointer[watchdog.Plan]
	inputs   []TensorInfo
	outputs  []TensorInfo
	maxBatch int          // frames a request may carry, when above 1
	checks   []valueCheck // per input
	pool     chan *request
	// canaries holds each backend's canary request while no canary of it
	// runs: Canary takes it, finish gives it back, Close keeps it.
	canaries [watchdog.NumBackends]chan *request

	closing atomic.Bool
	// shut is Close's progress, kept so that a Close that gave up with
	// its ctx can be called again and go on where it stopped: what it
	// took back stays taken.
	shut struct {
		sync.Mutex
		requests int                        // taken back from the pool
		canaries [watchdog.NumBackends]bool // taken back
		done     bool                       // lanes stopped
	}
	wg    sync.WaitGroup
	stats routerStats
	tap   atomic.Pointer[tapHolder] // nil: no tap (SetTap)
	// observer sees every answer (SetAnswerObserver); nil: none.
	observer atomic.Pointer[observerHolder]
}

// NewRouter builds a router over the three backends (nil where a backend
// is not loaded, e.g. a GPU model on a machine without a GPU: it then fails
// every run it is asked for). All loaded backends must share one input and
// output contract. rep may be nil.
func NewRouter(cfg RouterConfig, backends [watchdog.NumBackends]Runner, rep Reporter) (*Router, error) {
	if err := cfg.Inputs.Validate(); err != nil {
		return nil, fmt.Errorf("router: inputs.%w", err)
	}
	cfg.defaults()
	r := &Router{cfg: cfg, backends: backends, rep: rep}
	var ref Runner
	var refB watchdog.Backend
	var models []*ModelInfo
	for b, be := range backends {
		if be == nil {
			continue
		}
		info := be.Info()
		models = append(models, &info.Model)
		if ref == nil {
			ref, refB = be, watchdog.Backend(b)
			m := be.Info().Model
			r.inputs, r.outputs, r.maxBatch = m.Inputs, m.Outputs, m.MaxBatch
			continue
		}
		if err := sameContract(ref.Info(), be.Info()); err != nil {
			return nil, fmt.Errorf("router: %s and %s: %w", refB, watchdog.Backend(b), err)
		}
	}
	if ref == nil {
		return nil, errors.New("router: no backend loaded")
	}
	if backends[watchdog.Degraded] == nil {
		return nil, errors.New("router: the degraded backend must be loaded: it is the last rung")
	}
	checks, err := valueChecks(cfg.Inputs, r.inputs, models)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r.checks = checks
	r.pool = make(chan *request, cfg.Requests)
	for range cfg.Requests {
		r.pool <- r.newRequest()
	}
	for b := range r.canaries {
		r.canaries[b] = make(chan *request, 1)
		r.canaries[b] <- r.newCanary(watchdog.Backend(b)) // a canary probes with one frame
	}
	for b := range r.lanes {
		if backends[b] == nil {
			r.lanes[b] = make(chan *request)
			continue
		}
		n := cfg.Lanes
		if n <= 0 {
			n = max(backends[b].Info().Sessions, 1)
		}
		r.nlanes[b] = int32(n)
		r.lanes[b] = make(chan *request, n)
		for range n {
			r.wg.Add(1)
			r.startLane(watchdog.Backend(b))
		}
	}
	// Until the watchdog publishes, serve from the degraded model alone.
	p := watchdog.Plan{NumStarts: 1}
	p.Starts[0] = watchdog.Start{Backend: watchdog.Degraded}
	p.Prefer[0] = watchdog.Degraded
	r.plan.Store(&p)
	return r, nil
}

// SetPlan publishes the plan the next requests follow, and passes each
// backend in a worker process the plan's kill grace (Backend.SetKillGrace).
func (r *Router) SetPlan(p watchdog.Plan) {
	for b, be := range r.backends {
		if x := backendOf(be); x != nil {
			x.SetKillGrace(p.KillGrace[b])
		}
	}
	r.plan.Store(&p)
}

// Plan returns the plan in force.
func (r *Router) Plan() watchdog.Plan { return *r.plan.Load() }

// Inputs and Outputs describe the contract every backend shares.
func (r *Router) Inputs() []TensorInfo  { return r.inputs }
func (r *Router) Outputs() []TensorInfo { return r.outputs }

// Backend returns backend b (nil if not loaded).
func (r *Router) Backend(b watchdog.Backend) Runner { return r.backends[b] }

// Infer answers one request: it checks the inputs against the contract,
// then follows the plan in force until it has the answer to serve or the
// deadline comes. The winning outputs are copied into out (see
// Backend.NewOutputs for buffers to reuse). The only error is a bad
// request (*InputError), on which no backend runs and which counts in
// Stats as an invalid input only; everything else is told by ans.
//
// The router keeps no copy of in: each lane copies the inputs straight
// into its session and checks the copy's values (see InputChecks), so a
// value check refuses the request once the first lane has copied it. in is
// read until Infer returns and never after (frame.go): a lane that has not
// begun its copy by the answer does not run.
func (r *Router) Infer(ctx context.Context, deadline time.Time, in, out []Tensor, ans *Answer) error {
	t0 := time.Now()
	p := r.plan.Load()
	*ans = Answer{PlanSeq: p.Seq, Policy: p.Policy}
	if active, ok := p.Active(); ok {
		ans.Active = active
	}
	batch, err := r.checkRequest(in, out)
	if err != nil {
		return r.refuse(ans, t0, err)
	}
	q, err := r.answer(ctx, p, t0, deadline, batch, in, out, ans)
	if q != nil {
		r.release(q)
	}
	if err != nil {
		return r.refuse(ans, t0, err)
	}
	ans.Latency = time.Since(t0)
	r.stats.record(ans, deadline)
	if h := r.observer.Load(); h != nil {
		h.o.ObserveAnswer(ans.Summary())
	}
	return nil
}

// refuse answers a bad request: the answer says nothing but its plan, and
// it counts as an invalid input only.
func (r *Router) refuse(ans *Answer, t0 time.Time, err error) error {
	*ans = Answer{PlanSeq: ans.PlanSeq, Policy: ans.Policy, Active: ans.Active, Latency: time.Since(t0)}
	r.stats.refused()
	return err
}

// answer follows the plan for a request whose tensors fit the contract and
// fills ans; the error is an *InputError when a lane's copy of the inputs
// held values the checks refuse. The request it returns, when one was
// taken, is the caller's to release once the answer is recorded; its
// frame is closed: in is the caller's again.
func (r *Router) answer(ctx context.Context, p *watchdog.Plan, t0, deadline time.Time, batch int, in, out []Tensor, ans *Answer) (*request, error) {
	switch {
	case r.closing.Load():
		ans.noResult(ReasonClosed)
		return nil, nil
	case p.MRM:
		ans.noResult(ReasonMRM)
		ans.Detail = p.Reason
		return nil, nil
	case !t0.Before(deadline.Add(-r.cfg.AnswerMargin)):
		ans.noResult(ReasonDeadlinePassed)
		return nil, nil
	}
	var q *request
	select {
	case q = <-r.pool:
	default:
		ans.noResult(ReasonOverloaded)
		return nil, nil
	}
	for i := range in {
		q.frame.in[tensorIndex(r.inputs, in[i].Name, i)] = in[i]
	}
	q.frame.open(r.checks, batch)
	// Backends and the router work to the deadline less the margin, so
	// that the answer is out before the deadline itself.
	q.t0, q.deadline = t0, deadline.Add(-r.cfg.AnswerMargin)
	q.compare, q.vote = p.Compare, p.Vote
	q.refs.Store(1)
	served, ok, err := r.follow(ctx, p, q, ans)
	if ok {
		for i := range out {
			copyTensor(&out[i], &q.out[served][i])
		}
		// The served outputs stay put until release, and in until Infer
		// returns.
		if h := r.tap.Load(); h != nil {
			h.t.Answered(Tapped{In: q.frame.in, Out: q.out[served], ServedBy: served, Arrived: t0, Deadline: deadline})
		}
	}
	q.frame.close()
	return q, err
}

// checkRequest checks a request's tensors against the contract and
// returns the number of frames it carries. Their values are checked on
// each lane's copy (frame.copyTo).
func (r *Router) checkRequest(in, out []Tensor) (int, error) {
	batch, err := checkTensors(r.inputs, r.maxBatch, in)
	if err != nil {
		return 0, err
	}
	if len(out) != len(r.outputs) {
		return 0, &InputError{Expected: fmt.Sprintf("%d output tensors", len(r.outputs)), Got: fmt.Sprint(len(out))}
	}
	return batch, nil
}

func copyTensor(dst, src *Tensor) {
	dst.Name, dst.DType, dst.Shape = src.Name, src.DType, src.Shape
	dst.Data = resize(dst.Data, len(src.Data))
	copy(dst.Data, src.Data)
	if len(src.Raw) > 0 {
		dst.Raw = resize(dst.Raw, len(src.Raw))
		copy(dst.Raw, src.Raw)
	}
}

// Close stops the lanes once the runs in flight are over (each ends by its
// deadline), or reports how many are left when ctx ends first; called
// again, it goes on waiting for those. Requests after Close get
// ReasonClosed.
func (r *Router) Close(ctx context.Context) error {
	r.closing.Store(true)
	r.shut.Lock()
	defer r.shut.Unlock()
	if r.shut.done {
		return nil
	}
	// Take back every request and canary so that no lane gets new work.
	for ; r.shut.requests < cap(r.pool); r.shut.requests++ {
		select {
		case <-r.pool:
		case <-ctx.Done():
			return fmt.Errorf("router: close: %d requests still in flight: %w", cap(r.pool)-r.shut.requests, ctx.Err())
		}
	}
	for b := range r.canaries {
		if r.shut.canaries[b] {
			continue
		}
		select {
		case <-r.canaries[b]:
			r.shut.canaries[b] = true
		case <-ctx.Done():
			return fmt.Errorf("router: close: canary of %s still in flight: %w", watchdog.Backend(b), ctx.Err())
		}
	}
	for b := range r.lanes {
		close(r.lanes[b])
	}
	r.wg.Wait()
	r.shut.done = true
	return nil
}
