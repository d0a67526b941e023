package cmdlink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/command"
)

// item is a verified command waiting for the worker: its nonce unspent.
type item struct {
	ev  Event // time, topic and the envelope's ids
	env command.Envelope
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
	cfg.Clock = clock.Or(cfg.Clock)
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
// its rate (both answered busy while AnswerRate allows, nonce unspent).
// The queue thus holds only genuine commands, and a flood of forgeries
// cannot push one out. Handle returns once the message is checked
// (about 75 µs, more while others wait for a verifier slot); it never
// waits for the worker, a publication or the clock. It does not keep
// payload. It is safe for concurrent use.
func (r *Receiver) Handle(topic string, payload []byte) {
	r.received.Add(1)
	ev := Event{Time: r.cfg.Clock.Now(), Topic: topic}
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
	if nb := r.cfg.NotIssuedBefore; !nb.IsZero() && env.IssuedAt.Before(nb) {
		r.refuse(ev, nil, ReasonIssuedBeforeRestore, fmt.Errorf("%w: issued at %s, the store was restored at %s",
			ErrIssuedBeforeRestore, env.IssuedAt.UTC().Format(time.RFC3339Nano), nb.UTC().Format(time.RFC3339Nano)))
		return
	}
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

// Start starts the worker and the answering goroutine, which run until
// Close (ctx bounds the start only). A receiver starts once, and not
// after Close.
func (r *Receiver) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cmdlink: start: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed.Load():
		return errors.New("cmdlink: start after Close")
	case r.started:
		return errors.New("cmdlink: already started")
	}
	r.started = true
	go r.run()
	go r.answerRefusals()
	return nil
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
