package ckptlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/batch"
)

// Link is what the Shipper publishes with: *edge.Uploader's PublishBulk,
// which waits behind telemetry and for the rate cap, then for the
// broker's PUBACK.
type Link interface {
	PublishBulk(ctx context.Context, topic string, payload []byte) error
}

// Subscription is a topic filter and its handler, as edge.Subscription
// (the same fields: convert with edge.Subscription(s)). This package does
// not import sync/edge, so that the fleet side, which links the
// Receiver, links no Badger.
type Subscription struct {
	Topic   string
	Handler func(topic string, payload []byte)
}

// Defaults of ShipperConfig.
const (
	DefaultWindow     = 4
	DefaultAckTimeout = 30 * time.Second
	DefaultRetry      = time.Minute
)

// ShipperConfig configures a Shipper.
type ShipperConfig struct {
	// Vehicle is the vehicle id: the topics' level and the checkpoints'
	// vehicle (others in Dir are not uploaded).
	Vehicle string
	// Dir is the checkpoints directory (storage/checkpoint's Options.Dir).
	Dir  string
	Link Link
	// Clock dates the ack deadlines and the progress files; nil means the
	// system clock. (The waits themselves are real timers.)
	Clock clock.Clock
	Log   *zap.Logger
	// Window is the most chunks sent and not yet acknowledged; 0 means
	// DefaultWindow (4).
	Window int
	// AckTimeout is how long a chunk or the manifest waits for the
	// cloud's ack (counted from the broker's PUBACK) before it goes
	// again; 0 means DefaultAckTimeout (30 s).
	AckTimeout time.Duration
	// Retry is the wait before a checkpoint whose upload failed for a
	// reason that may pass (a refusal of the cloud's, a local read error)
	// is tried again; 0 means DefaultRetry (1 min). Kick tries at once.
	Retry time.Duration
}

func (c *ShipperConfig) defaults() error {
	switch {
	case !batch.ValidName(c.Vehicle):
		return fmt.Errorf("checkpoint shipper: bad vehicle id %q", c.Vehicle)
	case c.Dir == "":
		return errors.New("checkpoint shipper: no checkpoints directory")
	case c.Link == nil:
		return errors.New("checkpoint shipper: no link")
	case c.Window < 0 || c.AckTimeout < 0 || c.Retry < 0:
		return fmt.Errorf("checkpoint shipper: negative window %d, ack timeout %v or retry %v", c.Window, c.AckTimeout, c.Retry)
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.Retry == 0 {
		c.Retry = DefaultRetry
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	return nil
}

// State is where a checkpoint's upload stands.
type State string

// The states of an upload.
const (
	StatePending   State = "pending"   // not (fully) uploaded yet
	StateUploading State = "uploading" // being uploaded now
	StateComplete  State = "complete"  // complete in the cloud
	StateFailed    State = "failed"    // refused for good, or unreadable here (LastError)
)

// CheckpointStats is one checkpoint's upload.
type CheckpointStats struct {
	ID        string
	Kind      manifest.Kind
	Chunks    int // the checkpoint's
	Acked     int // chunks the cloud acknowledged
	Bytes     int64
	State     State
	LastError string
}

// ShipperStats are the Shipper's figures.
type ShipperStats struct {
	// Checkpoints are the local checkpoints, oldest first, as of the
	// last look at the directory.
	Checkpoints []CheckpointStats
	Pending     int // checkpoints not complete in the cloud (uploading included)
	Complete    int
	Failed      int
	Current     string // the checkpoint being uploaded, if any
	// Envelopes published (PUBACK received) and their bytes; Resent
	// counts chunks sent again (ack timeout, refusal, missing).
	ChunksSent    uint64
	ChunksResent  uint64
	ManifestsSent uint64 // manifest parts
	BytesSent     uint64
	Refusals      uint64 // acks refusing an envelope
	AcksIgnored   uint64 // acks of no upload in progress (late, or dropped when too many waited)
}

// Shipper uploads a vehicle's checkpoints to the cloud, oldest first,
// one at a time, each chunk acknowledged by the cloud, the manifest last.
// Start it, Kick it after each checkpoint, Close it.
type Shipper struct {
	cfg   ShipperConfig
	clock clock.Clock
	log   *zap.Logger
	acks  chan Ack
	kick  chan struct{}

	life struct {
		sync.Mutex
		started, closed bool
	}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards stats and current
	stats ShipperStats
}

// NewShipper builds a Shipper; it uploads nothing until Start.
func NewShipper(cfg ShipperConfig) (*Shipper, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Shipper{
		cfg: cfg, clock: clock.Or(cfg.Clock), log: cfg.Log.Named("ckptship"),
		acks: make(chan Ack, 256), kick: make(chan struct{}, 1),
	}, nil
}

// Subscriptions are the ack topic's, for the link's connection
// (edge.Config.Subscriptions): the handler hands each ack to the
// Shipper and never blocks.
func (s *Shipper) Subscriptions() []Subscription {
	return []Subscription{{Topic: AckTopic(s.cfg.Vehicle), Handler: s.onAck}}
}

func (s *Shipper) onAck(_ string, payload []byte) {
	a, err := DecodeAck(payload)
	if err != nil {
		s.log.Warn("undecodable checkpoint ack", zap.Error(err))
		return
	}
	if a.Vehicle != s.cfg.Vehicle {
		s.count(func(st *ShipperStats) { st.AcksIgnored++ })
		return
	}
	select {
	case s.acks <- a:
	default: // the chunk goes again at its ack timeout
		s.count(func(st *ShipperStats) { st.AcksIgnored++ })
	}
}

// Start starts the upload loop, which looks at the directory at once and
// runs until Close (ctx bounds the start only).
func (s *Shipper) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checkpoint shipper: start: %w", err)
	}
	s.life.Lock()
	defer s.life.Unlock()
	switch {
	case s.life.closed:
		return errors.New("checkpoint shipper: start after Close")
	case s.life.started:
		return errors.New("checkpoint shipper: already started")
	}
	s.life.started = true
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.run(rctx)
	return nil
}

// Close stops the upload and waits for it, until ctx ends. The progress
// of each upload is on disk: the next Shipper goes on from it.
func (s *Shipper) Close(ctx context.Context) error {
	s.life.Lock()
	s.life.closed = true
	cancel := s.cancel
	s.life.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("checkpoint shipper: close: %w", ctx.Err())
	}
}

// Kick says a checkpoint was just taken: the Shipper looks at the
// directory again once the upload in progress is over (and at once when
// idle). It does not block.
func (s *Shipper) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Busy says whether checkpoint id is being uploaded: retention must not
// delete it.
func (s *Shipper) Busy(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Current == id && id != ""
}

// Pinned returns the ids being uploaded (Busy).
func (s *Shipper) Pinned() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stats.Current == "" {
		return map[string]bool{}
	}
	return map[string]bool{s.stats.Current: true}
}

// Uploaded says whether checkpoint id is complete in the cloud, as its
// progress file says.
func (s *Shipper) Uploaded(id string) bool {
	if !manifest.ValidID(id) {
		return false
	}
	cdir := filepath.Join(s.cfg.Dir, id)
	m, err := manifest.Read(cdir)
	if err != nil {
		return false
	}
	p, err := loadProgress(cdir, m)
	return err == nil && p.Complete
}

// Stats returns the Shipper's figures.
func (s *Shipper) Stats() ShipperStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Checkpoints = append([]CheckpointStats(nil), s.stats.Checkpoints...)
	return st
}

func (s *Shipper) count(f func(*ShipperStats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// setCheckpoint updates checkpoint id's figures (and the totals).
func (s *Shipper) setCheckpoint(id string, f func(*CheckpointStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.stats.Checkpoints {
		if s.stats.Checkpoints[i].ID == id {
			f(&s.stats.Checkpoints[i])
		}
	}
	s.totalsLocked()
}

func (s *Shipper) totalsLocked() {
	s.stats.Pending, s.stats.Complete, s.stats.Failed = 0, 0, 0
	for _, c := range s.stats.Checkpoints {
		switch c.State {
		case StateComplete:
			s.stats.Complete++
		case StateFailed:
			s.stats.Failed++
		default:
			s.stats.Pending++
		}
	}
}

// run is the upload loop: a pass over the directory at start, at each
// Kick, and after Retry when a pass left a checkpoint to try again.
func (s *Shipper) run(ctx context.Context) {
	defer s.wg.Done()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	s.Kick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry.C:
		}
		again := s.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		if again {
			retry.Reset(s.cfg.Retry)
		}
	}
}

// pass uploads every checkpoint not complete in the cloud, oldest first
// (a base before what builds on it); it says whether one is to be tried
// again later.
func (s *Shipper) pass(ctx context.Context) (again bool) {
	for _, m := range s.scan() {
		err := s.upload(ctx, m)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return false
		case errors.Is(err, errDeleted):
			s.log.Info("checkpoint deleted while queued for upload; skipped", zap.String("checkpoint", m.ID))
		case errors.Is(err, errFailed):
			s.log.Error("checkpoint upload refused for good", zap.String("checkpoint", m.ID), zap.Error(err))
		default:
			again = true
			s.log.Warn("checkpoint upload failed; trying again later", zap.String("checkpoint", m.ID),
				zap.Duration("retry_in", s.cfg.Retry), zap.Error(err))
		}
	}
	return again
}

// scan lists the vehicle's checkpoints, oldest first, and refreshes the
// figures; it returns those not complete in the cloud and not failed for
// good. A directory without a readable manifest is reported and skipped.
func (s *Shipper) scan() []*manifest.Manifest {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("read the checkpoints directory", zap.String("dir", s.cfg.Dir), zap.Error(err))
	}
	var ms []*manifest.Manifest
	var bad []CheckpointStats
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		m, err := manifest.Read(filepath.Join(s.cfg.Dir, e.Name()))
		if err == nil && m.Vehicle != s.cfg.Vehicle {
			err = fmt.Errorf("checkpoint %s is of vehicle %q, not %q", m.ID, m.Vehicle, s.cfg.Vehicle)
		}
		if err != nil {
			bad = append(bad, CheckpointStats{ID: e.Name(), State: StateFailed, LastError: err.Error()})
			continue
		}
		ms = append(ms, m)
	}
	manifest.Sort(ms)
	var todo []*manifest.Manifest
	list := make([]CheckpointStats, 0, len(ms)+len(bad))
	for _, m := range ms {
		c := CheckpointStats{ID: m.ID, Kind: m.Kind, Chunks: len(m.Chunks), Bytes: m.Bytes, State: StatePending}
		p, err := loadProgress(filepath.Join(s.cfg.Dir, m.ID), m)
		switch {
		case err != nil:
			c.LastError = err.Error()
		case p.Complete:
			c.State, c.Acked = StateComplete, p.Chunks
		case p.Failed != "":
			c.State, c.Acked, c.LastError = StateFailed, p.count(), p.Failed
		default:
			c.Acked = p.count()
		}
		if c.State == StatePending {
			todo = append(todo, m)
		}
		list = append(list, c)
	}
	s.mu.Lock()
	s.stats.Checkpoints = append(list, bad...)
	s.totalsLocked()
	s.mu.Unlock()
	return todo
}
