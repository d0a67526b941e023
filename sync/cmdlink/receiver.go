package cmdlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/command"
)

// Executor carries out a verified command that the vehicle's motion
// allows. It returns the result to answer with (JSON, or nil), or an
// error: one that matches ErrBadArgs (errors.Is) is answered bad_args,
// any other failed. It must honour ctx, which ends at the receiver's
// ExecTimeout; commands run one at a time.
type Executor interface {
	Execute(ctx context.Context, env command.Envelope) (json.RawMessage, error)
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, env command.Envelope) (json.RawMessage, error)

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, env command.Envelope) (json.RawMessage, error) {
	return f(ctx, env)
}

// ErrBadArgs is what an Executor's error matches (errors.Is) when the
// command's arguments are wrong: the response's code is then bad_args,
// not failed. Wrap it (fmt.Errorf("%w: ...", ErrBadArgs)), use BadArgs,
// or give an error type of your own an Is method that matches it.
var ErrBadArgs = errors.New("bad arguments")

type badArgsError struct{ msg string }

func (e *badArgsError) Error() string        { return e.msg }
func (e *badArgsError) Is(target error) bool { return target == ErrBadArgs }

// BadArgs returns an error that matches ErrBadArgs with the formatted
// message, and nothing else, as its text.
func BadArgs(format string, a ...any) error { return &badArgsError{fmt.Sprintf(format, a...)} }

// Reason is a rejection class: why a command was not executed.
type Reason string

// The rejection classes. All but ReasonUnsafeWhileMoving come from
// command.Verifier.Verify's sentinel errors (ReasonWrongTarget also from
// a message on a topic that is neither this vehicle's nor the fleet's);
// ReasonUnsafeWhileMoving from command.Allowed.
const (
	ReasonMalformed         Reason = "malformed"
	ReasonUnsigned          Reason = "unsigned"
	ReasonUnknownKey        Reason = "unknown_key"
	ReasonBadSignature      Reason = "bad_signature"
	ReasonExpired           Reason = "expired"
	ReasonNotYetValid       Reason = "not_yet_valid"
	ReasonLifetimeTooLong   Reason = "lifetime_too_long"
	ReasonWrongTarget       Reason = "wrong_target"
	ReasonReplayed          Reason = "replayed"
	ReasonUnknownCommand    Reason = "unknown_command"
	ReasonNonceStore        Reason = "nonce_store"
	ReasonUnsafeWhileMoving Reason = "unsafe_while_moving"
)

// Reasons lists every rejection class, in the order Verify checks.
var Reasons = []Reason{
	ReasonMalformed, ReasonUnsigned, ReasonUnknownKey, ReasonBadSignature, ReasonUnknownCommand,
	ReasonWrongTarget, ReasonNotYetValid, ReasonLifetimeTooLong, ReasonExpired, ReasonReplayed,
	ReasonNonceStore, ReasonUnsafeWhileMoving,
}

var sentinels = []struct {
	err    error
	reason Reason
}{
	{command.ErrMalformed, ReasonMalformed},
	{command.ErrUnsigned, ReasonUnsigned},
	{command.ErrUnknownKey, ReasonUnknownKey},
	{command.ErrBadSignature, ReasonBadSignature},
	{command.ErrUnknownCommand, ReasonUnknownCommand},
	{command.ErrWrongTarget, ReasonWrongTarget},
	{command.ErrNotYetValid, ReasonNotYetValid},
	{command.ErrLifetimeTooLong, ReasonLifetimeTooLong},
	{command.ErrExpired, ReasonExpired},
	{command.ErrReplayed, ReasonReplayed},
	{command.ErrNonceStore, ReasonNonceStore},
	{command.ErrUnsafeWhileMoving, ReasonUnsafeWhileMoving},
}

// Classify names the rejection class of an error from Verify or Allowed.
// An error wrapping none of their sentinels is classed malformed: the
// command is refused either way.
func Classify(err error) Reason {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.reason
		}
	}
	return ReasonMalformed
}

// Event is what the receiver records of each command it took off the
// queue: one event per command, after its outcome is known and before
// the response is published. Fields taken from an envelope that failed
// verification are what it claimed, not what it proved.
type Event struct {
	Time          time.Time       `json:"time"` // when Handle received it
	Topic         string          `json:"topic"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Command       command.Command `json:"command,omitempty"`
	Target        string          `json:"target,omitempty"`
	KeyID         string          `json:"key_id,omitempty"`
	// Accepted: verified, allowed by the vehicle's motion, and handed to
	// the executor. Reason is the rejection class otherwise.
	Accepted bool   `json:"accepted"`
	Reason   Reason `json:"reason,omitempty"`
	// Code and Message are the response's.
	Code    command.Code `json:"code"`
	Message string       `json:"message,omitempty"`
	// Duration is how long the executor ran (0 when it did not).
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// Config configures a Receiver.
type Config struct {
	// Vehicle is this vehicle's id; the receiver takes commands from
	// CommandTopic(Vehicle) and FleetCommandTopic only.
	Vehicle string
	// Verifier checks envelopes; it must be made for the same Vehicle,
	// over a persistent nonce store (command.StateNonces) on a vehicle.
	Verifier *command.Verifier
	// Exec carries out the commands that pass.
	Exec Executor
	// Moving reports whether the vehicle moves (unknown counting as
	// moving); unsafe commands are refused while it returns true.
	Moving func() bool
	// Publish publishes a response at QoS 1 (not retained) and returns
	// once the broker has it, or an error. It is called from the
	// receiver's worker and answering goroutines, never from Handle.
	Publish func(topic string, payload []byte) error
	// Record, when set, is called once per command answered, with its
	// outcome, from the worker goroutine or the one answering refusals
	// (so possibly two calls at once; it may block briefly, e.g. to
	// store it). Refusals over AnswerRate are counted, not recorded.
	Record func(Event)
	// Log receives a line per command answered, and summaries of what
	// was not; nil means none.
	Log *zap.Logger
	// QueueLen bounds the verified commands waiting for the worker; one
	// that finds it full is answered busy (its nonce unspent). 0 means
	// 16.
	QueueLen int
	// Verifiers bounds the messages Handle checks at once (mostly the
	// ed25519 verification, 75 µs on a server core); the others wait
	// for their turn in Handle, which holds back their MQTT
	// acknowledgements and so, through the broker's in-flight window,
	// slows a flood at the broker. 0 means 1: a flood costs the vehicle
	// at most one core.
	Verifiers int
	// AnswerRate and AnswerBurst bound the refusals answered (rejections
	// and busy): a token bucket of AnswerBurst answers, refilled at
	// AnswerRate a second. A refusal beyond it is counted (by class, and
	// in Stats.Unanswered) and neither answered, recorded nor logged on
	// its own line. 0 means 10 a second and 20.
	AnswerRate  float64
	AnswerBurst int
	// KeyRate and KeyBurst bound, per signing key, the verified commands
	// queued: a token bucket per key id (the sender, as far as the
	// receiver can tell: MQTT 3.1.1 does not say who published, and the
	// key id is proven once the signature verifies). A command over its
	// key's rate is answered busy (its nonce unspent), so that one key
	// cannot fill the queue against the others. 0 means 5 a second and
	// half of QueueLen (at least 1).
	KeyRate  float64
	KeyBurst int
	// ExecTimeout bounds one execution; 0 means 10s. When it passes the
	// command is answered failed ("timed out") at once, and the next
	// command waits until the executor has returned.
	ExecTimeout time.Duration
	// MaxResponse bounds an encoded response; a larger result is
	// answered failed. 0 means 128 KiB.
	MaxResponse int
	// PublishAttempts is how often a response is tried when Publish
	// fails (500 ms, then 1 s, ... apart); 0 means 3.
	PublishAttempts int
	// Now is the clock of the events and the rate limits; nil means
	// time.Now.
	Now func() time.Time
}

// MaxEnvelope is the largest payload Handle checks; a larger one is
// rejected as malformed without being parsed (command's own limit).
const MaxEnvelope = 64 << 10

// Stats are the receiver's counts.
type Stats struct {
	Received uint64 // Handle calls
	// Dropped counts the commands that passed every check and were not
	// queued (busy: the queue was full, or their key over its rate),
	// and the messages that came after Close (not looked at).
	Dropped uint64
	// Busy counts the dropped commands answered busy.
	Busy uint64
	// OverKeyRate counts the dropped commands whose key was over its
	// rate (KeyRate, KeyBurst).
	OverKeyRate uint64
	// Unanswered counts the refusals (rejections and busy) not answered
	// because more came than AnswerRate allows.
	Unanswered uint64
	Accepted   uint64 // verified, allowed, handed to the executor
	// Rejected counts the commands refused, by class, answered or not.
	Rejected      map[Reason]uint64
	Executed      uint64 // executor returned a result: answered ok
	BadArgs       uint64 // executor's error matched ErrBadArgs
	Failed        uint64 // executor's other errors, timeouts and panics
	TimedOut      uint64 // of Failed: answered at ExecTimeout
	PublishErrors uint64 // responses that could not be published
	Queued        int    // verified commands waiting now
}

// RejectedTotal is the sum of Rejected.
func (s Stats) RejectedTotal() uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

// item is a verified command waiting for the worker: its nonce unspent.
type item struct {
	ev  Event // time, topic and the envelope's ids
	env command.Envelope
}

// answer is a refusal waiting to be recorded and published.
type answer struct {
	ev   Event
	resp command.Response
}

// Receiver is the edge end of the command channel: MQTT messages in
// through Handle, which verifies them and queues the genuine ones; one
// worker that spends the nonce, checks motion, executes and answers
// through Publish; one goroutine that answers the refusals.
type Receiver struct {
	cfg       Config
	log       *zap.Logger
	queue     chan item
	answers   chan answer
	verifiers chan struct{} // a semaphore of Verifiers slots
	stop      chan struct{}
	done      chan struct{}
	answered  chan struct{} // the answering goroutine ended
	ctx       context.Context
	kill      context.CancelFunc

	mu      sync.Mutex // started, and admission to the queue
	started bool
	pending map[string]bool    // nonces of the queued commands
	keys    map[string]*bucket // per trusted key id
	closed  atomic.Bool

	answerMu     sync.Mutex
	answerBudget *bucket

	lastDropLog, lastQuietLog atomic.Int64
	rejected                  map[Reason]*atomic.Uint64 // fixed keys: Reasons

	received, dropped, busy, overKey, unanswered, accepted, executed, badArgs, failed, timedOut, publishErrors atomic.Uint64
}

// NewReceiver checks cfg. Handle may be called at once; commands wait in
// the queue until Start.
func NewReceiver(cfg Config) (*Receiver, error) {
	switch {
	case !ValidVehicle(cfg.Vehicle):
		return nil, fmt.Errorf("cmdlink: bad vehicle id %q", cfg.Vehicle)
	case cfg.Verifier == nil:
		return nil, errors.New("cmdlink: no Verifier")
	case cfg.Exec == nil:
		return nil, errors.New("cmdlink: no Executor")
	case cfg.Moving == nil:
		return nil, errors.New("cmdlink: no Moving (the vehicle's motion decides which commands may run)")
	case cfg.Publish == nil:
		return nil, errors.New("cmdlink: no Publish")
	case cfg.AnswerRate < 0 || cfg.KeyRate < 0 || cfg.AnswerBurst < 0 || cfg.KeyBurst < 0:
		return nil, errors.New("cmdlink: AnswerRate, AnswerBurst, KeyRate and KeyBurst must not be negative")
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 16
	}
	if cfg.Verifiers <= 0 {
		cfg.Verifiers = 1
	}
	if cfg.AnswerRate == 0 {
		cfg.AnswerRate = 10
	}
	if cfg.AnswerBurst == 0 {
		cfg.AnswerBurst = 20
	}
	if cfg.KeyRate == 0 {
		cfg.KeyRate = 5
	}
	if cfg.KeyBurst == 0 {
		cfg.KeyBurst = max(1, cfg.QueueLen/2)
	}
	if cfg.ExecTimeout <= 0 {
		cfg.ExecTimeout = 10 * time.Second
	}
	if cfg.MaxResponse <= 0 {
		cfg.MaxResponse = 128 << 10
	}
	if cfg.PublishAttempts <= 0 {
		cfg.PublishAttempts = 3
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	ctx, kill := context.WithCancel(context.Background())
	r := &Receiver{
		cfg: cfg, log: log.Named("cmdlink").With(zap.String("vehicle", cfg.Vehicle)),
		queue: make(chan item, cfg.QueueLen), answers: make(chan answer, cfg.AnswerBurst),
		verifiers: make(chan struct{}, cfg.Verifiers),
		stop:      make(chan struct{}), done: make(chan struct{}), answered: make(chan struct{}),
		ctx: ctx, kill: kill, rejected: map[Reason]*atomic.Uint64{},
		pending: map[string]bool{}, keys: map[string]*bucket{},
		answerBudget: newBucket(cfg.AnswerRate, cfg.AnswerBurst),
	}
	for _, reason := range Reasons {
		r.rejected[reason] = new(atomic.Uint64)
	}
	return r, nil
}

// Topics are the topics to subscribe to (QoS 1) with Handle as handler:
// the vehicle's command topic and the fleet's.
func (r *Receiver) Topics() []string {
	return []string{CommandTopic(r.cfg.Vehicle), FleetCommandTopic}
}

// Handle takes one MQTT message and checks it at once: size, topic, then
// command.Verifier.Check (envelope, signature, trusted key, command,
// target, times, and a nonce not spent), at most Config.Verifiers
// messages at a time. A message that fails is refused with its class,
// answered while AnswerRate allows and counted either way. One that
// passes is queued for the worker, unless the same envelope is queued
// already (refused as replayed), the queue is full or its key is over
// its rate (both answered busy, nonce unspent). The queue thus holds
// only genuine commands, and a flood of forgeries cannot push one out.
// Handle returns once the message is checked (about 75 µs, more while
// others wait for a verifier slot); it never waits for the worker, a
// publication or the clock. It does not keep payload. It is safe for
// concurrent use.
func (r *Receiver) Handle(topic string, payload []byte) {
	r.received.Add(1)
	ev := Event{Time: r.cfg.Now(), Topic: topic}
	if r.closed.Load() {
		r.dropped.Add(1)
		return
	}
	if len(payload) > MaxEnvelope {
		r.refuse(ev, nil, ReasonMalformed, fmt.Errorf("%w: %d bytes, the limit is %d", command.ErrMalformed, len(payload), MaxEnvelope))
		return
	}
	if !r.ownTopic(topic) {
		// Not this vehicle's: whatever it says, it is not for us, and
		// its nonce is left unspent.
		r.refuse(ev, payload, ReasonWrongTarget, fmt.Errorf("%w: arrived on %s, which is neither %s nor %s",
			command.ErrWrongTarget, topic, CommandTopic(r.cfg.Vehicle), FleetCommandTopic))
		return
	}
	r.verifiers <- struct{}{}
	env, err := r.cfg.Verifier.Check(payload)
	<-r.verifiers
	if err != nil {
		r.refuse(ev, payload, Classify(err), err)
		return
	}
	ev.CorrelationID, ev.Command, ev.Target, ev.KeyID = env.CorrelationID, env.Command, env.Target, env.KeyID
	r.admit(item{ev: ev, env: env})
}

// admit queues a verified command, or turns it away.
func (r *Receiver) admit(it item) {
	r.mu.Lock()
	switch {
	case r.pending[it.env.Nonce]:
		r.mu.Unlock()
		r.refuse(it.ev, nil, ReasonReplayed, fmt.Errorf("%w %s: the same envelope is queued already", command.ErrReplayed, it.env.Nonce))
		return
	case len(r.queue) == cap(r.queue):
		r.mu.Unlock()
		r.turnAway(it.ev, false)
		return
	case !r.keyBucket(it.env.KeyID).take(it.ev.Time):
		r.mu.Unlock()
		r.turnAway(it.ev, true)
		return
	}
	r.pending[it.env.Nonce] = true
	// Only admit sends, under r.mu, and there is room: this never blocks.
	r.queue <- it
	r.mu.Unlock()
}

// keyBucket is the rate limit of a trusted key id (r.mu held); there are
// as many as the verifier trusts keys.
func (r *Receiver) keyBucket(id string) *bucket {
	b := r.keys[id]
	if b == nil {
		b = newBucket(r.cfg.KeyRate, r.cfg.KeyBurst)
		r.keys[id] = b
	}
	return b
}

// turnAway answers a verified command busy: the queue was full, or its
// key over its rate. Its nonce is unspent: the same envelope may be sent
// again.
func (r *Receiver) turnAway(ev Event, overKey bool) {
	n := r.dropped.Add(1)
	ev.Code = command.CodeBusy
	ev.Message = fmt.Sprintf("busy: the command queue (%d) is full; not run, send it again", r.cfg.QueueLen)
	if overKey {
		r.overKey.Add(1)
		ev.Message = fmt.Sprintf("busy: key %s sent more than %d commands at once, or more than %g a second; not run, send it again",
			ev.KeyID, r.cfg.KeyBurst, r.cfg.KeyRate)
	}
	if r.takeAnswer(ev.Time) && r.enqueue(ev, command.Response{CorrelationID: ev.CorrelationID, Code: command.CodeBusy, Message: ev.Message}) {
		r.busy.Add(1)
	} else {
		r.unanswered.Add(1)
	}
	now := time.Now().UnixNano()
	last := r.lastDropLog.Load()
	if now-last >= int64(time.Second) && r.lastDropLog.CompareAndSwap(last, now) {
		r.log.Warn("verified command not queued: busy", zap.String("message", ev.Message), zap.String("correlation_id", ev.CorrelationID),
			zap.Int("queue_len", r.cfg.QueueLen), zap.Uint64("dropped_total", n))
	}
}

// takeAnswer takes a token of the refusals' answer budget.
func (r *Receiver) takeAnswer(now time.Time) bool {
	r.answerMu.Lock()
	defer r.answerMu.Unlock()
	return r.answerBudget.take(now)
}

// enqueue hands a refusal to the answering goroutine; false when it is
// behind by a whole burst.
func (r *Receiver) enqueue(ev Event, resp command.Response) bool {
	select {
	case r.answers <- answer{ev, resp}:
		return true
	default:
		return false
	}
}

// refuse counts a rejection on arrival and answers it while the budget
// allows; payload, when given, is what the correlation id is taken from.
func (r *Receiver) refuse(ev Event, payload []byte, reason Reason, err error) {
	r.count(reason)
	if !r.takeAnswer(ev.Time) {
		n := r.unanswered.Add(1)
		now := time.Now().UnixNano()
		last := r.lastQuietLog.Load()
		if now-last >= int64(time.Second) && r.lastQuietLog.CompareAndSwap(last, now) {
			r.log.Warn("commands rejected faster than they are answered: counted, not answered",
				zap.String("reason", string(reason)), zap.Uint64("unanswered_total", n))
		}
		return
	}
	if payload != nil {
		if u, ok := command.Peek(payload); ok {
			ev.CorrelationID, ev.Command, ev.Target, ev.KeyID = u.CorrelationID, u.Command, u.Target, u.KeyID
		}
	}
	ev, resp := r.rejection(ev, reason, err)
	if !r.enqueue(ev, resp) {
		r.unanswered.Add(1)
	}
}

// count counts a rejection by its class.
func (r *Receiver) count(reason Reason) {
	c, ok := r.rejected[reason]
	if !ok {
		c = r.rejected[ReasonMalformed]
	}
	c.Add(1)
}

// rejection fills in ev's outcome and logs it.
func (r *Receiver) rejection(ev Event, reason Reason, err error) (Event, command.Response) {
	ev.Reason = reason
	ev.Code = command.CodeRejected
	if reason == ReasonUnsafeWhileMoving {
		ev.Code = command.CodeUnsafeWhileMoving
	}
	ev.Message = string(reason) + ": " + err.Error()
	r.log.Warn("command rejected", zap.String("reason", string(reason)), zap.String("topic", ev.Topic),
		zap.String("correlation_id", ev.CorrelationID), zap.String("command", string(ev.Command)),
		zap.String("key_id", ev.KeyID), zap.Error(err))
	return ev, command.Response{CorrelationID: ev.CorrelationID, Code: ev.Code, Message: ev.Message}
}

// answerRefusals records and publishes the refusals Handle queued.
func (r *Receiver) answerRefusals() {
	defer close(r.answered)
	for {
		select {
		case <-r.stop:
			return
		case a := <-r.answers:
			r.finish(a.ev, a.resp)
		}
	}
}

// Start starts the worker and the answering goroutine. Starting twice,
// or after Close, does nothing.
func (r *Receiver) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed.Load() {
		return
	}
	r.started = true
	go r.run()
	go r.answerRefusals()
}

// Close stops taking commands. The command being executed may finish
// (and be answered) until ctx ends; then its context is cancelled. The
// commands still queued are abandoned unanswered (their nonces unspent,
// so the same envelopes may be sent again), as are the refusals not
// answered yet.
func (r *Receiver) Close(ctx context.Context) error {
	r.mu.Lock()
	first := !r.closed.Swap(true)
	if first {
		close(r.stop)
	}
	started := r.started
	r.mu.Unlock()
	if !started {
		r.kill()
		return nil
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		r.kill()
		return fmt.Errorf("cmdlink: close: the command in progress did not finish: %w", ctx.Err())
	}
	r.kill()
	select {
	case <-r.answered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cmdlink: close: a refusal's answer did not go out: %w", ctx.Err())
	}
}

// Stats returns the counts.
func (r *Receiver) Stats() Stats {
	s := Stats{
		Received: r.received.Load(), Dropped: r.dropped.Load(), Busy: r.busy.Load(), OverKeyRate: r.overKey.Load(),
		Unanswered: r.unanswered.Load(), Accepted: r.accepted.Load(),
		Executed: r.executed.Load(), BadArgs: r.badArgs.Load(), Failed: r.failed.Load(),
		TimedOut: r.timedOut.Load(), PublishErrors: r.publishErrors.Load(), Queued: len(r.queue),
		Rejected: map[Reason]uint64{},
	}
	for reason, c := range r.rejected {
		if n := c.Load(); n > 0 {
			s.Rejected[reason] = n
		}
	}
	return s
}

func (r *Receiver) run() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			if n := len(r.queue); n > 0 {
				r.log.Warn("closing: queued commands abandoned, not answered", zap.Int("commands", n))
			}
			return
		default:
		}
		select {
		case <-r.stop:
		case it := <-r.queue:
			r.process(it)
		}
	}
}

func (r *Receiver) ownTopic(topic string) bool {
	return topic == CommandTopic(r.cfg.Vehicle) || topic == FleetCommandTopic
}

// process runs a verified command: its nonce is spent here, when it is
// taken for execution.
func (r *Receiver) process(it item) {
	ev, env := it.ev, it.env
	err := r.cfg.Verifier.Spend(env)
	r.mu.Lock()
	delete(r.pending, env.Nonce)
	r.mu.Unlock()
	if err != nil {
		// Expired while queued, or the nonce cache failed.
		r.reject(ev, Classify(err), err)
		return
	}
	if err := command.Allowed(env.Command, r.cfg.Moving()); err != nil {
		// The nonce is spent: the same envelope is refused from now on,
		// so a refused command cannot be run later by surprise. The
		// issuer sends a new one once the vehicle is stopped.
		r.reject(ev, ReasonUnsafeWhileMoving, err)
		return
	}
	r.accepted.Add(1)
	ev.Accepted = true
	r.log.Info("command accepted", zap.String("command", string(env.Command)), zap.String("correlation_id", env.CorrelationID),
		zap.String("key_id", env.KeyID), zap.String("target", env.Target))
	r.execute(ev, env)
}

// reject refuses a verified command from the worker: always answered.
func (r *Receiver) reject(ev Event, reason Reason, err error) {
	r.count(reason)
	ev, resp := r.rejection(ev, reason, err)
	r.finish(ev, resp)
}

type outcome struct {
	res json.RawMessage
	err error
}

var errPanic = errors.New("executor panicked")

func (r *Receiver) execute(ev Event, env command.Envelope) {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.ExecTimeout)
	defer cancel()
	ch := make(chan outcome, 1)
	start := time.Now()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				r.log.Error("executor panicked", zap.Any("panic", p), zap.String("command", string(env.Command)),
					zap.ByteString("stack", debug.Stack()))
				ch <- outcome{err: fmt.Errorf("%w: %v", errPanic, p)}
			}
		}()
		res, err := r.cfg.Exec.Execute(ctx, env)
		ch <- outcome{res, err}
	}()
	var out outcome
	waiting := false
	select {
	case out = <-ch:
	case <-ctx.Done():
		// Answer now; the next command waits for the executor below.
		out.err = ctx.Err()
		waiting = true
	}
	ev.Duration = time.Since(start)
	resp := command.Response{CorrelationID: env.CorrelationID}
	switch err := out.err; {
	case err == nil:
		resp.OK, resp.Code, resp.Result = true, command.CodeOK, out.res
		if len(out.res) > 0 && !json.Valid(out.res) {
			resp = failedResponse(env, "the executor's result is not JSON")
		}
	case errors.Is(err, ErrBadArgs):
		resp.Code, resp.Message = command.CodeBadArgs, err.Error()
	case (waiting || errors.Is(err, context.Canceled)) && r.ctx.Err() != nil:
		resp.Code, resp.Message = command.CodeFailed, "cancelled: the receiver is closing"
	case errors.Is(err, context.DeadlineExceeded):
		r.timedOut.Add(1)
		resp.Code, resp.Message = command.CodeFailed, fmt.Sprintf("timed out after %v: %v", r.cfg.ExecTimeout, err)
		if waiting {
			resp.Message = fmt.Sprintf("timed out after %v; the command may still complete", r.cfg.ExecTimeout)
		}
	default:
		resp.Code, resp.Message = command.CodeFailed, err.Error()
	}
	if resp.OK {
		if b, err := command.EncodeResponse(resp); err != nil || len(b) > r.cfg.MaxResponse {
			resp = failedResponse(env, fmt.Sprintf("the result (%d bytes) does not fit in a response (limit %d bytes)", len(b), r.cfg.MaxResponse))
		}
	}
	switch resp.Code {
	case command.CodeOK:
		r.executed.Add(1)
	case command.CodeBadArgs:
		r.badArgs.Add(1)
	default:
		r.failed.Add(1)
	}
	ev.Code, ev.Message = resp.Code, resp.Message
	fields := []zap.Field{zap.String("command", string(env.Command)), zap.String("correlation_id", env.CorrelationID),
		zap.String("code", string(resp.Code)), zap.Duration("took", ev.Duration)}
	if resp.OK {
		r.log.Info("command done", fields...)
	} else {
		r.log.Warn("command not done", append(fields, zap.String("message", resp.Message))...)
	}
	r.finish(ev, resp)
	if waiting {
		<-ch // one command at a time: wait for the late executor
		r.log.Info("timed-out command returned", zap.String("correlation_id", env.CorrelationID), zap.Duration("took", time.Since(start)))
	}
}

func failedResponse(env command.Envelope, msg string) command.Response {
	return command.Response{CorrelationID: env.CorrelationID, Code: command.CodeFailed, Message: msg}
}

// finish records ev and publishes resp.
func (r *Receiver) finish(ev Event, resp command.Response) {
	if r.cfg.Record != nil {
		r.cfg.Record(ev)
	}
	b, err := command.EncodeResponse(resp)
	if err != nil {
		// Only a code/OK mismatch or a non-JSON result fail, and both
		// are ruled out above.
		r.publishErrors.Add(1)
		r.log.Error("encode response", zap.Error(err))
		return
	}
	topic := ResponseTopic(r.cfg.Vehicle)
	wait := 500 * time.Millisecond
retry:
	for attempt := 1; ; attempt++ {
		if err = r.cfg.Publish(topic, b); err == nil {
			return
		}
		if attempt >= r.cfg.PublishAttempts {
			break
		}
		select {
		case <-r.stop:
			break retry
		case <-time.After(wait):
		}
		wait *= 2
	}
	r.publishErrors.Add(1)
	r.log.Warn("response not published", zap.String("topic", topic), zap.String("correlation_id", resp.CorrelationID),
		zap.String("code", string(resp.Code)), zap.Error(err))
}
