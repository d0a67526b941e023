package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// checkpointer takes the store's checkpoints into one directory: when the
// schedule says one is due, and on demand, one at a time, on a goroutine
// of its own (never on a request's path: the store keeps taking records
// while a checkpoint is written). After each it applies retention.
type checkpointer struct {
	cc      checkpointerConfig
	reqs    chan ckptRequest
	cancel  context.CancelFunc
	done    chan struct{}
	started bool

	mu sync.Mutex
	st ckptState
}

// checkpointerConfig is what a checkpointer works with.
type checkpointerConfig struct {
	Store   *storage.Store
	Dir     string
	Sched   CheckpointConfig
	Budget  int64 // bytes
	Vehicle string
	Version string
	Clock   clock.Clock
	Log     *zap.Logger
	// Busy, if set, returns the checkpoints retention must not delete
	// now (being uploaded); Shipped, if set, says whether the cloud has a
	// checkpoint (retention deletes those first). Kick, if set, is called
	// after each new checkpoint. Event, if set, records what happened.
	Busy    func() map[string]bool
	Shipped func(id string) bool
	Kick    func()
	Event   func(v any)
}

// ckptState is what status reports; guarded by checkpointer.mu.
type ckptState struct {
	last       map[manifest.Kind]*manifest.Manifest
	seconds    map[string]float64 // how long the checkpoints taken here took
	kept       int
	used       int64
	overBudget string
	running    manifest.Kind
	taken      uint64
	failures   uint64
	deleted    uint64
	lastErr    string
	lastErrAt  time.Time
	retryAt    time.Time // no scheduled attempt before, after a failure
	backoff    time.Duration
}

type ckptRequest struct {
	kind  manifest.Kind
	reply chan ckptResult // buffered: the worker never waits for it
}

type ckptResult struct {
	m       *manifest.Manifest
	seconds float64
	err     error
}

// errCheckpointsClosed is returned to requests the checkpointer did not
// take because the daemon is shutting down.
var errCheckpointsClosed = errors.New("checkpoints: the daemon is shutting down")

// Retrying a scheduled checkpoint that failed waits from the first delay,
// doubling up to the last.
const (
	ckptRetryFirst = time.Minute
	ckptRetryMax   = time.Hour
)

func newCheckpointer(cc checkpointerConfig) *checkpointer {
	cc.Clock = clock.Or(cc.Clock)
	return &checkpointer{
		cc:   cc,
		reqs: make(chan ckptRequest),
		done: make(chan struct{}),
		st:   ckptState{last: map[manifest.Kind]*manifest.Manifest{}, seconds: map[string]float64{}},
	}
}

// start runs the worker until close. It reads what the directory holds,
// applies retention, and checks the schedule at once and then on every
// tick.
func (c *checkpointer) start(ctx context.Context) error {
	if c.started {
		return errors.New("checkpoints: started already")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	tick := c.cc.Clock.NewTicker(ckptTick(c.cc.Sched))
	go c.run(ctx, tick, c.cc.Clock.Now())
	return nil
}

// close stops the worker: a checkpoint being written is abandoned (it
// leaves nothing behind) and the worker waited for until ctx ends.
func (c *checkpointer) close(ctx context.Context) error {
	if !c.started {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("checkpoints: the worker did not stop: %w", ctx.Err())
	}
}

// ckptTick is how often the worker checks the schedule: a tenth of the
// shortest interval, between a second and a minute.
func ckptTick(s CheckpointConfig) time.Duration {
	t := time.Minute
	for _, d := range []time.Duration{s.FullEvery, s.DifferentialEvery, s.IncrementalEvery} {
		if d > 0 {
			t = min(t, d/10)
		}
	}
	return max(t, time.Second)
}

// run is the worker. The schedule is first checked at the time of the
// start, then at every tick's.
func (c *checkpointer) run(ctx context.Context, tick clock.Ticker, start time.Time) {
	defer close(c.done)
	defer tick.Stop()
	c.retain()
	c.scheduled(ctx, start)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-c.reqs:
			m, secs, err := c.take(ctx, r.kind, c.cc.Clock.Now())
			r.reply <- ckptResult{m, secs, err}
		case now := <-tick.C():
			c.scheduled(ctx, now)
		}
	}
}

// scheduled takes the checkpoint due at now (a tick's time), if any.
func (c *checkpointer) scheduled(ctx context.Context, now time.Time) {
	c.mu.Lock()
	kind, due := dueKind(now, c.cc.Sched, c.st.last)
	wait := now.Before(c.st.retryAt)
	c.mu.Unlock()
	if !due || wait {
		return
	}
	if _, _, err := c.take(ctx, kind, now); err != nil && ctx.Err() == nil {
		c.mu.Lock()
		c.st.backoff = min(max(2*c.st.backoff, ckptRetryFirst), ckptRetryMax)
		c.st.retryAt = now.Add(c.st.backoff)
		c.mu.Unlock()
	}
}

// dueKind is the kind of checkpoint due at now, given the newest
// checkpoint of each kind: a kind is due its interval after the last
// checkpoint that covers it (a full covers everything, a differential
// covers incrementals), or at once when there is none or it is dated
// after now (the clock went back). The most demanding kind due wins.
func dueKind(now time.Time, s CheckpointConfig, last map[manifest.Kind]*manifest.Manifest) (manifest.Kind, bool) {
	at := func(ks ...manifest.Kind) (t time.Time) {
		for _, k := range ks {
			if m := last[k]; m != nil && m.Created.After(t) {
				t = m.Created
			}
		}
		return t
	}
	for _, k := range []struct {
		kind  manifest.Kind
		every time.Duration
		cover time.Time
	}{
		{manifest.Full, s.FullEvery, at(manifest.Full)},
		{manifest.Differential, s.DifferentialEvery, at(manifest.Full, manifest.Differential)},
		{manifest.Incremental, s.IncrementalEvery, at(manifest.Full, manifest.Differential, manifest.Incremental)},
	} {
		if k.every > 0 && (k.cover.IsZero() || k.cover.After(now) || !now.Before(k.cover.Add(k.every))) {
			return k.kind, true
		}
	}
	return "", false
}

// take writes one checkpoint dated created, records it, and applies
// retention.
func (c *checkpointer) take(ctx context.Context, kind manifest.Kind, created time.Time) (*manifest.Manifest, float64, error) {
	c.mu.Lock()
	c.st.running = kind
	c.mu.Unlock()
	t0 := time.Now()
	m, err := checkpoint.Take(ctx, c.cc.Store, checkpoint.Options{
		Dir: c.cc.Dir, Kind: kind, Vehicle: c.cc.Vehicle, Created: created, DaemonVersion: c.cc.Version,
	})
	secs := time.Since(t0).Seconds()
	c.mu.Lock()
	c.st.running = ""
	c.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			c.cc.Log.Info("checkpoint abandoned: the daemon is shutting down", zap.String("kind", string(kind)))
			return nil, secs, errCheckpointsClosed
		}
		c.failed(err)
		c.cc.Log.Error("checkpoint failed; the store keeps serving", zap.String("kind", string(kind)), zap.String("dir", c.cc.Dir), zap.Error(err))
		c.event(ckptEvent{Type: "checkpoint_failed", Kind: string(kind), Error: err.Error()})
		return nil, secs, err
	}
	c.mu.Lock()
	c.st.last[m.Kind] = m
	c.st.seconds[m.ID] = secs
	for id := range c.st.seconds { // only the newest of each kind are shown
		if l := c.st.last[manifest.Kind(id[strings.IndexByte(id, '-')+1:])]; l == nil || l.ID != id {
			delete(c.st.seconds, id)
		}
	}
	c.st.taken++
	c.st.lastErr, c.st.lastErrAt = "", time.Time{}
	c.st.retryAt, c.st.backoff = time.Time{}, 0
	c.mu.Unlock()
	c.cc.Log.Info("checkpoint taken", zap.String("id", m.ID), zap.String("kind", string(m.Kind)), zap.String("base", m.Base),
		zap.String("forced_full", m.ForcedFull), zap.Uint64("entries", m.Entries), zap.Int64("bytes", m.Bytes), zap.Float64("seconds", secs))
	c.event(ckptEvent{Type: "checkpoint", ID: m.ID, Kind: string(m.Kind), Base: m.Base, ForcedFull: m.ForcedFull, Bytes: m.Bytes, Seconds: secs})
	if c.cc.Kick != nil {
		c.cc.Kick()
	}
	c.retain()
	return m, secs, nil
}

// ckptEvent is a checkpoint's record in the events stream.
type ckptEvent struct {
	Type       string  `json:"type"`
	ID         string  `json:"id,omitempty"`
	Kind       string  `json:"kind"`
	Base       string  `json:"base,omitempty"`
	ForcedFull string  `json:"forced_full,omitempty"`
	Bytes      int64   `json:"bytes,omitempty"`
	Seconds    float64 `json:"seconds,omitempty"`
	Error      string  `json:"error,omitempty"`
}

func (c *checkpointer) event(e ckptEvent) {
	if c.cc.Event != nil {
		c.cc.Event(e)
	}
}

// failed records a failure for status.
func (c *checkpointer) failed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.failures++
	c.st.lastErr, c.st.lastErrAt = err.Error(), c.cc.Clock.Now()
}

// now takes a checkpoint of kind at once (after the one being written, if
// any) and returns its summary. A caller that stops waiting does not stop
// it: it is written all the same.
func (c *checkpointer) now(ctx context.Context, kind manifest.Kind) (status.CheckpointSummary, error) {
	r := ckptRequest{kind: kind, reply: make(chan ckptResult, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return status.CheckpointSummary{}, fmt.Errorf("checkpoint: another checkpoint is still being written; try again: %w", ctx.Err())
	case <-c.done:
		return status.CheckpointSummary{}, errCheckpointsClosed
	}
	select {
	case res := <-r.reply:
		if res.err != nil {
			return status.CheckpointSummary{}, res.err
		}
		return summarize(res.m, res.seconds), nil
	case <-ctx.Done():
		return status.CheckpointSummary{}, fmt.Errorf("checkpoint (%s): still being written when the caller stopped waiting; it completes on its own, and status shows it: %w", kind, ctx.Err())
	case <-c.done:
		return status.CheckpointSummary{}, errCheckpointsClosed
	}
}

// summarize is the on-demand answer for m.
func summarize(m *manifest.Manifest, secs float64) status.CheckpointSummary {
	s := status.CheckpointSummary{ID: m.ID, Kind: string(m.Kind), Base: m.Base, ForcedFull: m.ForcedFull,
		Records: map[string]uint64{}, Entries: m.Entries, Bytes: m.Bytes, Seconds: secs}
	for _, st := range m.Streams {
		s.Records[st.Name] = st.Count
	}
	return s
}

// info is m in status.
func ckptInfo(m *manifest.Manifest, now time.Time, secs float64) status.CheckpointInfo {
	ci := status.CheckpointInfo{ID: m.ID, Kind: string(m.Kind), Base: m.Base, Created: m.Created.UTC().Format(time.RFC3339Nano),
		AgeS: max(now.Sub(m.Created).Seconds(), 0), Entries: m.Entries, Bytes: m.Bytes, ForcedFull: m.ForcedFull, Seconds: secs}
	for _, st := range m.Streams {
		ci.Records += st.Count
	}
	return ci
}

// status reports the checkpoints.
func (c *checkpointer) status() status.CheckpointsStatus {
	now := c.cc.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := status.CheckpointsStatus{State: "on", Enabled: true, Dir: c.cc.Dir, BudgetBytes: c.cc.Budget, UsedBytes: c.st.used,
		Kept: c.st.kept, OverBudget: c.st.overBudget, Running: string(c.st.running), Taken: c.st.taken,
		Failures: c.st.failures, Deleted: c.st.deleted, LastError: c.st.lastErr}
	if c.st.lastErr != "" {
		s.State = "failing"
		s.LastErrorAt = c.st.lastErrAt.UTC().Format(time.RFC3339Nano)
	}
	for k, m := range c.st.last {
		if s.Last == nil {
			s.Last = map[string]status.CheckpointInfo{}
		}
		s.Last[string(k)] = ckptInfo(m, now, c.st.seconds[m.ID])
	}
	return s
}
