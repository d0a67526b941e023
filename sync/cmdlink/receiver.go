package cmdlink

import (
	"bytes"
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
	// receiver's worker goroutine, never from Handle.
	Publish func(topic string, payload []byte) error
	// Record, when set, is called once per command answered, with its
	// outcome, from the worker goroutine or the one answering busy (so
	// possibly two calls at once; it may block briefly, e.g. to store it).
	Record func(Event)
	// Log receives a line per command and per drop; nil means none.
	Log *zap.Logger
	// QueueLen bounds the commands waiting for the worker; a command
	// arriving when it is full is dropped (logged, counted) and answered
	// busy without being looked at, as long as no more than QueueLen such
	// answers are waiting; beyond that it goes unanswered. 0 means 16.
	QueueLen int
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
	// Now is the clock of the events; nil means time.Now.
	Now func() time.Time
}

// MaxEnvelope is the largest payload Handle queues; a larger one is
// rejected as malformed without being copied (command's own limit).
const MaxEnvelope = 64 << 10

// Stats are the receiver's counts.
type Stats struct {
	Received uint64 // Handle calls
	Dropped  uint64 // not queued: the queue was full, or the receiver closed
	// Busy counts the dropped commands answered busy (the rest of a
	// flood, beyond a second queue as long as the first, goes unanswered).
	Busy     uint64
	Accepted uint64 // verified, allowed, handed to the executor
	// Rejected counts the commands refused, by class.
	Rejected      map[Reason]uint64
	Executed      uint64 // executor returned a result: answered ok
	BadArgs       uint64 // executor's error matched ErrBadArgs
	Failed        uint64 // executor's other errors, timeouts and panics
	TimedOut      uint64 // of Failed: answered at ExecTimeout
	PublishErrors uint64 // responses that could not be published
	Queued        int    // waiting now
}

// RejectedTotal is the sum of Rejected.
func (s Stats) RejectedTotal() uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

type item struct {
	topic   string
	payload []byte
	size    int // > 0: too large, payload not kept
	at      time.Time
}

// Receiver is the edge end of the command channel: MQTT messages in
// through Handle, one worker that verifies, checks motion, executes and
// answers through Publish.
type Receiver struct {
	cfg   Config
	log   *zap.Logger
	queue chan item
	// overflow holds commands that found the queue full, to be answered
	// busy by a goroutine of their own without being looked at.
	overflow chan item
	stop     chan struct{}
	done     chan struct{}
	busyDone chan struct{}
	ctx      context.Context
	kill     context.CancelFunc

	mu      sync.Mutex
	started bool
	closed  atomic.Bool

	lastDropLog atomic.Int64
	rejected    map[Reason]*atomic.Uint64 // fixed keys: Reasons

	received, dropped, busy, accepted, executed, badArgs, failed, timedOut, publishErrors atomic.Uint64
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
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 16
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
		queue: make(chan item, cfg.QueueLen), overflow: make(chan item, cfg.QueueLen),
		stop: make(chan struct{}), done: make(chan struct{}), busyDone: make(chan struct{}),
		ctx: ctx, kill: kill, rejected: map[Reason]*atomic.Uint64{},
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

// Handle takes one MQTT message. It never blocks: it copies the payload
// into the bounded queue and returns; when the queue is full (or the
// receiver is closed) the command is dropped, counted (Stats.Dropped),
// logged (at most once a second) and not answered, so its issuer times
// out. It is safe for concurrent use.
func (r *Receiver) Handle(topic string, payload []byte) {
	r.received.Add(1)
	it := item{topic: topic, at: r.cfg.Now()}
	if len(payload) > MaxEnvelope {
		it.size = len(payload)
	} else {
		it.payload = bytes.Clone(payload)
	}
	if r.closed.Load() {
		r.dropped.Add(1)
		return
	}
	select {
	case r.queue <- it:
		return
	default:
	}
	n := r.dropped.Add(1)
	what := "command queue full: command dropped, answered busy"
	select {
	case r.overflow <- it:
	default:
		what = "command queue full: command dropped, not answered"
	}
	now := time.Now().UnixNano()
	last := r.lastDropLog.Load()
	if now-last >= int64(time.Second) && r.lastDropLog.CompareAndSwap(last, now) {
		r.log.Warn(what, zap.String("topic", topic), zap.Int("queue_len", r.cfg.QueueLen), zap.Uint64("dropped_total", n))
	}
}

// answerBusy answers the commands that found the queue full: busy, with
// the correlation id they claim, without verifying them (their nonces
// stay unspent). Messages on a topic that is not this vehicle's are not
// answered here: the worker would refuse them anyway.
func (r *Receiver) answerBusy() {
	defer close(r.busyDone)
	for {
		select {
		case <-r.stop:
			return
		case it := <-r.overflow:
			if !r.ownTopic(it.topic) {
				continue
			}
			ev := Event{Time: it.at, Topic: it.topic, Code: command.CodeBusy,
				Message: fmt.Sprintf("busy: the command queue (%d) is full; not looked at, send it again", r.cfg.QueueLen)}
			if u, ok := command.Peek(it.payload); ok {
				ev.CorrelationID, ev.Command, ev.Target, ev.KeyID = u.CorrelationID, u.Command, u.Target, u.KeyID
			}
			r.busy.Add(1)
			r.finish(ev, command.Response{CorrelationID: ev.CorrelationID, Code: command.CodeBusy, Message: ev.Message})
		}
	}
}

// Start starts the worker. Starting twice, or after Close, does nothing.
func (r *Receiver) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed.Load() {
		return
	}
	r.started = true
	go r.run()
	go r.answerBusy()
}

// Close stops taking commands. The command being executed may finish
// (and be answered) until ctx ends; then its context is cancelled. The
// commands still queued are abandoned unanswered (their nonces unspent,
// so the same envelopes may be sent again).
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
	case <-r.busyDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cmdlink: close: a busy answer did not go out: %w", ctx.Err())
	}
}

// Stats returns the counts.
func (r *Receiver) Stats() Stats {
	s := Stats{
		Received: r.received.Load(), Dropped: r.dropped.Load(), Busy: r.busy.Load(), Accepted: r.accepted.Load(),
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

func (r *Receiver) process(it item) {
	ev := Event{Time: it.at, Topic: it.topic}
	if u, ok := command.Peek(it.payload); ok {
		ev.CorrelationID, ev.Command, ev.Target, ev.KeyID = u.CorrelationID, u.Command, u.Target, u.KeyID
	}
	if it.size > 0 {
		r.reject(ev, ReasonMalformed, fmt.Errorf("%w: %d bytes, the limit is %d", command.ErrMalformed, it.size, MaxEnvelope))
		return
	}
	if !r.ownTopic(it.topic) {
		// Not this vehicle's: whatever it says, it is not for us, and
		// its nonce is left unspent.
		r.reject(ev, ReasonWrongTarget, fmt.Errorf("%w: arrived on %s, which is neither %s nor %s",
			command.ErrWrongTarget, it.topic, CommandTopic(r.cfg.Vehicle), FleetCommandTopic))
		return
	}
	env, err := r.cfg.Verifier.Verify(it.payload)
	if err != nil {
		r.reject(ev, Classify(err), err)
		return
	}
	ev.CorrelationID, ev.Command, ev.Target, ev.KeyID = env.CorrelationID, env.Command, env.Target, env.KeyID
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

func (r *Receiver) reject(ev Event, reason Reason, err error) {
	c, ok := r.rejected[reason]
	if !ok {
		c = r.rejected[ReasonMalformed]
	}
	c.Add(1)
	ev.Reason = reason
	ev.Code = command.CodeRejected
	if reason == ReasonUnsafeWhileMoving {
		ev.Code = command.CodeUnsafeWhileMoving
	}
	ev.Message = string(reason) + ": " + err.Error()
	r.log.Warn("command rejected", zap.String("reason", string(reason)), zap.String("topic", ev.Topic),
		zap.String("correlation_id", ev.CorrelationID), zap.String("command", string(ev.Command)),
		zap.String("key_id", ev.KeyID), zap.Error(err))
	r.finish(ev, command.Response{CorrelationID: ev.CorrelationID, Code: ev.Code, Message: ev.Message})
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
