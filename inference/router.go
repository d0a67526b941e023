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

// Status of an answer.
type Status uint8

const (
	// StatusOK: outputs from the backend named by Answer.ServedBy.
	StatusOK Status = 1
	// StatusNoResult: no acceptable answer by the deadline; Answer.Reason
	// says why. The supervisor acts on it (minimal-risk manoeuvre).
	StatusNoResult Status = 2
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNoResult:
		return "no_result"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Reason explains a NO_RESULT answer. The numbers are part of the socket
// protocol.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonMRM: the watchdog has no usable backend left.
	ReasonMRM
	// ReasonDeadlinePassed: the deadline had passed when the request came.
	ReasonDeadlinePassed
	// ReasonAllFailed: every backend started failed (error or invalid
	// output) before the deadline.
	ReasonAllFailed
	// ReasonDeadline: no acceptable answer came by the deadline.
	ReasonDeadline
	// ReasonOverloaded: too many requests in flight, or every planned
	// backend busy with earlier requests.
	ReasonOverloaded
	// ReasonCancelled: the caller's context ended first.
	ReasonCancelled
	// ReasonClosed: the router is shutting down.
	ReasonClosed
)

var reasonNames = [...]string{"none", "mrm", "deadline_passed_on_arrival", "all_backends_failed", "deadline", "overloaded", "cancelled", "shutting_down"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Outcome is what happened to one backend during one request.
type Outcome uint8

const (
	// OutcomeNotPlanned: the plan did not include the backend.
	OutcomeNotPlanned Outcome = iota
	// OutcomeSkipped: planned, but an acceptable answer came before its
	// start time.
	OutcomeSkipped
	// OutcomePending: started; still running when the answer went out.
	OutcomePending
	OutcomeOK
	// OutcomeInvalid: answered with NaN, Inf or out-of-range outputs.
	OutcomeInvalid
	// OutcomeFailed: the backend returned an error.
	OutcomeFailed
	// OutcomeDeadline: the backend did not answer by the deadline.
	OutcomeDeadline
	// OutcomeBusy: every lane of the backend was taken by earlier runs.
	OutcomeBusy
)

var outcomeNames = [...]string{"not_planned", "skipped", "pending", "ok", "invalid", "failed", "deadline", "busy"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// BackendReport is one backend's part in one request.
type BackendReport struct {
	Outcome Outcome
	// StartedAfter is when the backend started, after the request came.
	StartedAfter time.Duration
	// Latency is the backend's own time, when it answered before the
	// answer went out.
	Latency time.Duration
}

// Answer is the router's answer to one request.
type Answer struct {
	Status Status
	Reason Reason
	// ServedBy is meaningful when Status is StatusOK.
	ServedBy watchdog.Backend
	// Detail explains an MRM answer (the plan's reason); it is shared, do
	// not modify.
	Detail  string
	PlanSeq uint64
	Policy  watchdog.Policy
	// Active is the plan's preferred rung; an answer served by another one
	// is a failover answer.
	Active   watchdog.Backend
	Backends [watchdog.NumBackends]BackendReport
	// Latency from the request's arrival to the answer.
	Latency time.Duration
}

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

// RouterConfig sizes and tunes a router.
type RouterConfig struct {
	// Requests in flight at once; beyond, requests get ReasonOverloaded.
	// 0 means 8.
	Requests int `yaml:"requests" json:"requests"`
	// Lanes are runs of one backend in flight at once (each lane is a
	// goroutine); when all are busy the backend counts as OutcomeBusy and
	// the next rung starts, instead of queueing behind runs that may be
	// stuck. 0 means as many as the backend has sessions.
	Lanes int `yaml:"lanes" json:"lanes"`
	// AnswerMargin: backends and the router work to the deadline less this
	// margin, which is left for sending the answer. 0 means 2ms.
	AnswerMargin time.Duration `yaml:"answer_margin" json:"answer_margin"`
	// PreferWait: once a less preferred backend has answered well, the
	// router waits at most this long for a more preferred one still
	// running (never past the deadline). 0 means 5ms.
	PreferWait time.Duration `yaml:"prefer_wait" json:"prefer_wait"`
	// CompareTolerance: primary and shadow diverge when any output element
	// differs by more. 0 means 0.05.
	CompareTolerance float32 `yaml:"compare_tolerance" json:"compare_tolerance"`
	// VoteTolerance: the degraded model agrees with a GPU backend when no
	// output element differs by more. It is a different, smaller network,
	// so this is loose. 0 means 0.5.
	VoteTolerance float32 `yaml:"vote_tolerance" json:"vote_tolerance"`
	// Inputs says which input values are refused before any backend sees
	// them; by default NaN and ±Inf, and values outside a declared range.
	Inputs InputChecks `yaml:"inputs" json:"inputs"`
}

func (c *RouterConfig) defaults() {
	if c.Requests <= 0 {
		c.Requests = 8
	}
	if c.AnswerMargin <= 0 {
		c.AnswerMargin = 2 * time.Millisecond
	}
	if c.PreferWait <= 0 {
		c.PreferWait = 5 * time.Millisecond
	}
	if c.CompareTolerance <= 0 {
		c.CompareTolerance = 0.05
	}
	if c.VoteTolerance <= 0 {
		c.VoteTolerance = 0.5
	}
	c.Inputs.defaults()
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
	canaries [watchdog.NumBackends]*request // one canary at a time per backend
	canaryIn [watchdog.NumBackends]atomic.Bool

	closing atomic.Bool
	wg      sync.WaitGroup
	stats   routerStats
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
	var models []*ModelInfo
	for b, be := range backends {
		if be == nil {
			continue
		}
		info := be.Info()
		models = append(models, &info.Model)
		if ref == nil {
			ref = be
			m := be.Info().Model
			r.inputs, r.outputs, r.maxBatch = m.Inputs, m.Outputs, m.MaxBatch
			continue
		}
		if err := sameContract(ref.Info(), be.Info()); err != nil {
			return nil, fmt.Errorf("router: %s and %s: %w", watchdog.Backend(0), watchdog.Backend(b), err)
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
		q := r.newRequest()
		q.canary, q.canaryOf = true, watchdog.Backend(b)
		fillPattern(q.in)
		r.setBatch(q, 1) // a canary probes with one frame
		r.canaries[b] = q
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
			go r.lane(watchdog.Backend(b))
		}
	}
	// Until the watchdog publishes, serve from the degraded model alone.
	p := watchdog.Plan{NumStarts: 1}
	p.Starts[0] = watchdog.Start{Backend: watchdog.Degraded}
	p.Prefer[0] = watchdog.Degraded
	r.plan.Store(&p)
	return r, nil
}

func sameContract(a, b Info) error {
	if a.Model.MaxBatch != b.Model.MaxBatch {
		return fmt.Errorf("max_batch %d vs %d", a.Model.MaxBatch, b.Model.MaxBatch)
	}
	if err := sameTensors("input", a.Model.Inputs, b.Model.Inputs); err != nil {
		return err
	}
	return sameTensors("output", a.Model.Outputs, b.Model.Outputs)
}

func sameTensors(kind string, a, b []TensorInfo) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d %ss vs %d", len(a), kind, len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].DType != b[i].DType || !sameShape(a[i].Shape, b[i].Shape) {
			return fmt.Errorf("%s %d differs: %s %s %v vs %s %s %v", kind, i, a[i].Name, a[i].DType, a[i].Shape, b[i].Name, b[i].DType, b[i].Shape)
		}
	}
	return nil
}

// fillPattern gives canary inputs a fixed, unremarkable pattern.
func fillPattern(ts []Tensor) {
	for _, t := range ts {
		for i := range t.Data {
			t.Data[i] = float32(i%97) / 97
		}
	}
}

// SetPlan publishes the plan the next requests follow.
func (r *Router) SetPlan(p watchdog.Plan) { r.plan.Store(&p) }

// Plan returns the plan in force.
func (r *Router) Plan() watchdog.Plan { return *r.plan.Load() }

// Inputs and Outputs describe the contract every backend shares.
func (r *Router) Inputs() []TensorInfo  { return r.inputs }
func (r *Router) Outputs() []TensorInfo { return r.outputs }

// Backend returns backend b (nil if not loaded).
func (r *Router) Backend(b watchdog.Backend) Runner { return r.backends[b] }

// request is the state of one request, reused: its own copy of the inputs
// (lanes may still read them after the answer went out), one set of outputs
// per backend, and the channel lanes answer on.
type request struct {
	in   []Tensor
	out  [watchdog.NumBackends][]Tensor
	done chan watchdog.Backend // lanes send their backend when they finish
	// Written by a lane before it sends on done; read by the router after
	// receiving, and by finish after every lane is over.
	result   [watchdog.NumBackends]laneResult
	started  [watchdog.NumBackends]bool
	seen     [watchdog.NumBackends]bool // the router has received the lane's answer
	unloaded [watchdog.NumBackends]bool // planned but not loaded: a failed run
	t0       time.Time
	deadline time.Time
	timer    *time.Timer
	compare  bool
	vote     bool
	canary   bool
	canaryOf watchdog.Backend
	refs     atomic.Int32 // lanes running plus the router while it waits
}

type laneResult struct {
	outcome Outcome
	latency time.Duration
	run     watchdog.RunResult // the watchdog's view of the run
}

func (r *Router) newRequest() *request {
	q := &request{done: make(chan watchdog.Backend, watchdog.NumBackends), timer: time.NewTimer(time.Hour)}
	q.timer.Stop()
	q.in = make([]Tensor, len(r.inputs))
	for i, t := range r.inputs {
		q.in[i] = newBuffer(t)
	}
	for b := range q.out {
		q.out[b] = make([]Tensor, len(r.outputs))
		for i, t := range r.outputs {
			q.out[b][i] = newBuffer(t)
		}
	}
	return q
}

// setBatch sizes q's inputs for a batch of n frames, within the capacity
// newRequest gave them.
func (r *Router) setBatch(q *request, n int) {
	for j := range q.in {
		t, w := &q.in[j], &r.inputs[j]
		size := w.Size / max(r.maxBatch, 1) * n
		t.Shape = w.shapeFor(n)
		if t.Data != nil {
			t.Data = t.Data[:size]
		} else {
			t.Raw = t.Raw[:size*w.DType.Size()]
		}
	}
}

// lane runs backend b for requests until the router closes.
func (r *Router) lane(b watchdog.Backend) {
	defer r.wg.Done()
	be := r.backends[b]
	for q := range r.lanes[b] {
		res, err := be.Run(context.Background(), q.deadline, q.in, q.out[b])
		lr := laneResult{outcome: OutcomeOK, latency: res.Latency}
		rr := watchdog.RunResult{Backend: b, Latency: res.Latency, Canary: q.canary}
		if err != nil {
			lr.outcome, rr.Err, rr.Invalid = classify(err)
			if rr.Err == watchdog.RunDeadline {
				rr.Latency = q.deadline.Sub(q.t0)
			}
		}
		lr.run = rr
		q.result[b] = lr
		if q.canary && r.rep != nil {
			r.rep.ReportRun(rr) // serving runs go out together, from finish
		}
		// Free the lane before telling the router, so that a request the
		// caller sends right after this answer finds the lane free.
		r.busy[b].Add(-1)
		q.done <- b
		r.release(q)
	}
}

// classify turns a run's error into the router's outcome and the
// watchdog's view of it.
func classify(err error) (Outcome, watchdog.RunErr, watchdog.Validity) {
	var invalid *InvalidOutputError
	switch {
	case errors.As(err, &invalid):
		return OutcomeInvalid, watchdog.RunOK, validity(invalid.Reason)
	case errors.Is(err, ErrDeadline):
		return OutcomeDeadline, watchdog.RunDeadline, watchdog.Valid
	}
	return OutcomeFailed, watchdog.RunFailed, watchdog.Valid
}

func validity(reason string) watchdog.Validity {
	switch reason {
	case InvalidNaN:
		return watchdog.InvalidNaN
	case InvalidInf:
		return watchdog.InvalidInf
	}
	return watchdog.InvalidRange
}

// release drops one reference to q; the last one compares the answers,
// reports, and returns q for reuse.
func (r *Router) release(q *request) {
	if q.refs.Add(-1) != 0 {
		return
	}
	r.finish(q)
}

// finish runs once every lane of q is over: it reports the runs of a
// serving request together, compares primary and shadow when the plan asked
// for it and, when they diverged and the degraded model answered too, lets
// it break the tie.
func (r *Router) finish(q *request) {
	for len(q.done) > 0 {
		<-q.done
	}
	if !q.canary && r.rep != nil {
		var rr watchdog.RequestResult
		for b := range q.result {
			if q.started[b] || q.unloaded[b] {
				rr.Runs[rr.NumRuns] = q.result[b].run
				rr.NumRuns++
			}
		}
		if rr.NumRuns > 0 {
			r.rep.ReportRequest(rr)
		}
	}
	ok := func(b watchdog.Backend) bool { return q.started[b] && q.result[b].outcome == OutcomeOK }
	if q.compare && r.rep != nil && ok(watchdog.Primary) && ok(watchdog.Shadow) {
		d := distance(q.out[watchdog.Primary], q.out[watchdog.Shadow])
		diverged := d > float64(r.cfg.CompareTolerance)
		r.rep.ReportComparison(watchdog.Comparison{Diverged: diverged, Distance: d})
		if diverged && q.vote && ok(watchdog.Degraded) {
			tol := float64(r.cfg.VoteTolerance)
			pd := distance(q.out[watchdog.Primary], q.out[watchdog.Degraded]) <= tol
			sd := distance(q.out[watchdog.Shadow], q.out[watchdog.Degraded]) <= tol
			r.rep.ReportVote(watchdog.VoteOf(false, pd, sd))
		}
	}
	q.started = [watchdog.NumBackends]bool{}
	q.seen = [watchdog.NumBackends]bool{}
	q.unloaded = [watchdog.NumBackends]bool{}
	if q.canary {
		r.canaryIn[q.canaryOf].Store(false)
		return
	}
	r.pool <- q
}

// distance is the largest absolute difference between two sets of float32
// outputs of the same contract.
func distance(a, b []Tensor) float64 {
	var d float32
	for i := range a {
		for j, v := range a[i].Data {
			w := b[i].Data[j]
			diff := v - w
			if diff < 0 {
				diff = -diff
			}
			if diff > d || diff != diff {
				d = diff
			}
		}
	}
	return float64(d)
}

// Infer answers one request: it checks the inputs against the contract and
// their values (see InputChecks), then follows the plan in force until it
// has the answer to serve or the deadline comes. The winning outputs are
// copied into out (see Backend.NewOutputs for buffers to reuse). The only
// error is a bad request (*InputError), which no backend sees and which
// counts in Stats as an invalid input only; everything else is told by ans.
func (r *Router) Infer(ctx context.Context, deadline time.Time, in, out []Tensor, ans *Answer) error {
	t0 := time.Now()
	p := r.plan.Load()
	*ans = Answer{PlanSeq: p.Seq, Policy: p.Policy}
	if active, ok := p.Active(); ok {
		ans.Active = active
	}
	batch, err := r.checkRequest(in, out)
	if err != nil {
		ans.Latency = time.Since(t0)
		r.stats.refused()
		return err
	}
	defer func() {
		ans.Latency = time.Since(t0)
		r.stats.record(ans, deadline)
	}()
	switch {
	case r.closing.Load():
		ans.noResult(ReasonClosed)
		return nil
	case p.MRM:
		ans.noResult(ReasonMRM)
		ans.Detail = p.Reason
		return nil
	case !t0.Before(deadline.Add(-r.cfg.AnswerMargin)):
		ans.noResult(ReasonDeadlinePassed)
		return nil
	}
	var q *request
	select {
	case q = <-r.pool:
	default:
		ans.noResult(ReasonOverloaded)
		return nil
	}
	r.setBatch(q, batch)
	for i := range in {
		j := tensorIndex(r.inputs, in[i].Name, i)
		copy(q.in[j].Data, in[i].Data)
		copy(q.in[j].Raw, in[i].Raw)
	}
	// Backends and the router work to the deadline less the margin, so
	// that the answer is out before the deadline itself.
	q.t0, q.deadline = t0, deadline.Add(-r.cfg.AnswerMargin)
	q.compare, q.vote = p.Compare, p.Vote
	q.refs.Store(1)
	served, ok := r.follow(ctx, p, q, ans)
	if ok {
		for i := range out {
			copyTensor(&out[i], &q.out[served][i])
		}
	}
	r.release(q)
	return nil
}

// checkRequest checks a request's tensors against the contract, then the
// values of its inputs, and returns the number of frames it carries.
func (r *Router) checkRequest(in, out []Tensor) (int, error) {
	batch, err := checkTensors(r.inputs, r.maxBatch, in)
	if err != nil {
		return 0, err
	}
	if len(out) != len(r.outputs) {
		return 0, &InputError{Expected: fmt.Sprintf("%d output tensors", len(r.outputs)), Got: fmt.Sprint(len(out))}
	}
	for i := range in {
		if err := r.checks[tensorIndex(r.inputs, in[i].Name, i)].checkValues(&in[i]); err != nil {
			return 0, err
		}
	}
	return batch, nil
}

func (a *Answer) noResult(reason Reason) {
	a.Status, a.Reason = StatusNoResult, reason
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

// follow runs the plan for q and fills ans. It returns the backend whose
// outputs are served.
func (r *Router) follow(ctx context.Context, p *watchdog.Plan, q *request, ans *Answer) (watchdog.Backend, bool) {
	starts, prefer := p.StartList(), p.PreferList()
	for _, s := range starts {
		ans.Backends[s.Backend].Outcome = OutcomeSkipped
	}
	next, running, failed, started, busy := 0, 0, 0, 0, 0
	var graceEnd time.Time // set when a less preferred answer is at hand
	for {
		now := time.Now()
		// Start what is due: by its delay, or at once when everything
		// started so far has failed. Nothing more once an answer is at hand.
		for next < len(starts) && !r.haveAcceptable(q, prefer) {
			s := starts[next]
			if now.Before(startAt(p, q, s)) && (started == 0 || failed < started) {
				break
			}
			next++
			started++
			rep := &ans.Backends[s.Backend]
			rep.StartedAfter = now.Sub(q.t0)
			if r.dispatch(s.Backend, q) {
				rep.Outcome = OutcomePending
				running++
				continue
			}
			rep.Outcome = r.notRun(s.Backend, q)
			if rep.Outcome == OutcomeBusy {
				busy++
			}
			failed++
		}
		final := !now.Before(q.deadline)
		if graceEnd.IsZero() && r.haveAcceptable(q, prefer) {
			graceEnd = now.Add(r.cfg.PreferWait)
		}
		if b, ok := r.choose(q, prefer, final || (!graceEnd.IsZero() && !now.Before(graceEnd))); ok {
			ans.Status, ans.ServedBy = StatusOK, b
			return b, true
		}
		if running == 0 && next == len(starts) {
			if busy == started {
				ans.noResult(ReasonOverloaded) // nothing failed: nothing could start
			} else {
				ans.noResult(ReasonAllFailed)
			}
			return 0, false
		}
		if final {
			ans.noResult(ReasonDeadline)
			return 0, false
		}
		wake := q.deadline
		if !graceEnd.IsZero() && graceEnd.Before(wake) {
			wake = graceEnd
		}
		if next < len(starts) {
			if t := startAt(p, q, starts[next]); t.Before(wake) {
				wake = t
			}
		}
		q.timer.Reset(wake.Sub(now))
		select {
		case b := <-q.done:
			q.timer.Stop()
			q.seen[b] = true
			running--
			rep := &ans.Backends[b]
			rep.Outcome, rep.Latency = q.result[b].outcome, q.result[b].latency
			if rep.Outcome != OutcomeOK {
				failed++
			}
		case <-q.timer.C:
		case <-ctx.Done():
			q.timer.Stop()
			ans.noResult(ReasonCancelled)
			return 0, false
		}
	}
}

// startAt is when a planned start is due. The plan's delays are worked out
// for the watchdog's deadline; a backend started late in the budget (the
// degraded model as last resort) keeps the slack the plan gave it before
// this request's own deadline.
func startAt(p *watchdog.Plan, q *request, s watchdog.Start) time.Time {
	at := q.t0.Add(s.Delay)
	if p.Deadline > s.Delay {
		if latest := q.deadline.Add(s.Delay - p.Deadline); latest.Before(at) {
			at = latest
		}
	}
	return at
}

// dispatch hands q to a lane of backend b, unless all its lanes are taken.
func (r *Router) dispatch(b watchdog.Backend, q *request) bool {
	if r.backends[b] == nil {
		return false
	}
	if r.busy[b].Add(1) > r.nlanes[b] {
		r.busy[b].Add(-1)
		return false
	}
	q.refs.Add(1)
	q.started[b] = true
	r.lanes[b] <- q // buffered for every lane: never blocks
	return true
}

// notRun accounts for a backend that could not be started. A backend that
// is not loaded has failed, and the watchdog hears so: at once for a
// canary, with the request's other runs for a serving request. A backend
// whose lanes are all taken is not reported: that is load, not a fault of
// the backend, and if its runs are stuck, their own results (deadline
// misses) tell the watchdog.
func (r *Router) notRun(b watchdog.Backend, q *request) Outcome {
	if r.backends[b] != nil {
		r.stats.busy.Add(1)
		return OutcomeBusy
	}
	run := watchdog.RunResult{Backend: b, Err: watchdog.RunFailed, Canary: q.canary}
	if q.canary {
		if r.rep != nil {
			r.rep.ReportRun(run)
		}
		return OutcomeFailed
	}
	q.result[b] = laneResult{outcome: OutcomeFailed, run: run}
	q.unloaded[b] = true
	return OutcomeFailed
}

// haveAcceptable reports whether any started backend has answered well.
func (r *Router) haveAcceptable(q *request, prefer []watchdog.Backend) bool {
	for _, b := range prefer {
		// seen first: result is the lane's until the router has seen it.
		if q.seen[b] && q.result[b].outcome == OutcomeOK {
			return true
		}
	}
	return false
}

// answered reports whether backend b's lane has finished for q, as seen by
// the router (it has received b on done).
func (q *request) answered(b watchdog.Backend) bool { return q.seen[b] }

// choose picks the answer to serve: the most preferred acceptable answer,
// once no more preferred backend is still running — or, when done waiting
// (the deadline, or PreferWait after a good answer), the best one at hand.
func (r *Router) choose(q *request, prefer []watchdog.Backend, final bool) (watchdog.Backend, bool) {
	for _, b := range prefer {
		switch {
		case !q.started[b]:
		case !q.answered(b):
			if !final {
				return 0, false
			}
		case q.result[b].outcome == OutcomeOK:
			return b, true
		}
	}
	return 0, false
}

// Canary runs one canary probe of backend b off the serving path, with the
// given time budget and a fixed input; the result goes to the reporter with
// Canary set. It returns false, and runs nothing, when a canary of b is still
// running or the router is closing.
func (r *Router) Canary(b watchdog.Backend, budget time.Duration) bool {
	if !b.Valid() || r.closing.Load() || !r.canaryIn[b].CompareAndSwap(false, true) {
		return false
	}
	q := r.canaries[b]
	q.t0 = time.Now()
	q.deadline = q.t0.Add(budget)
	q.compare, q.vote = false, false
	q.refs.Store(1)
	if !r.dispatch(b, q) {
		r.notRun(b, q)
	}
	r.release(q)
	return true
}

// Close stops the lanes once the runs in flight are over (each ends by its
// deadline), or reports how many are left when ctx ends first. Requests
// after Close get ReasonClosed.
func (r *Router) Close(ctx context.Context) error {
	if r.closing.Swap(true) {
		return nil
	}
	// Take back every request and canary so that no lane gets new work.
	for got := 0; got < cap(r.pool); got++ {
		select {
		case <-r.pool:
		case <-ctx.Done():
			return fmt.Errorf("router: close: %d requests still in flight: %w", cap(r.pool)-got, ctx.Err())
		}
	}
	for b := range r.canaryIn {
		for !r.canaryIn[b].CompareAndSwap(false, true) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("router: close: canary of %s still in flight: %w", watchdog.Backend(b), ctx.Err())
			case <-time.After(time.Millisecond):
			}
		}
	}
	for b := range r.lanes {
		close(r.lanes[b])
	}
	r.wg.Wait()
	return nil
}
