package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
)

// Store is the telemetry buffer. Producers append through Stream handles;
// the sync package drains it through the Outbox methods; Close ends it.
// All methods are safe for concurrent use.
type Store struct {
	cfg   Config
	log   *zap.Logger // marked with internalField: never goes back into the store
	clk   clock.Clock // the disk checks' ticker and times; WithClock
	clock stamps      // the records' timestamps, from clk
	hooks hooks

	db       *badger.DB
	boot     uint32
	id       uint64   // incarnation id, fixed when the directory is created
	lineage  *Lineage // m/lineage: set when restored from a checkpoint
	recovery *Recovery

	streams []*Stream // every stream, configured or found on disk
	byName  map[string]*Stream

	queue       chan entry
	queuedBytes atomic.Int64
	refuse      atomic.Uint32 // a GapReason while Append refuses records, else 0
	drill       drillFull     // SimulateDiskFull (drill.go)
	pool        bufPool

	// writeMu serialises the store's Badger writes with DropPrefix and
	// value-log GC, which make concurrent writes fail.
	writeMu sync.Mutex
	// drops counts DropPrefix calls since Open (under writeMu): they leave
	// no tombstones, so a checkpoint after one must be full (Backup).
	drops atomic.Uint64
	// ackUnsynced is set by Ack, whose cursor write is not synced on its
	// own: the writer's next commit or disk check syncs it (within
	// CheckInterval).
	ackUnsynced atomic.Bool

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced when a durable watermark advances

	maint maintenance // the writer's own
	seg   *segmenter  // the writer's own

	// statsMu guards every Stream's buckets and the figures in stats.
	statsMu sync.Mutex
	stats   storeStats

	stop      chan struct{} // closed by Close: the writer drains and returns
	abort     chan struct{} // closed when Close's context ends: stop retrying
	done      chan struct{} // closed when the writer has returned
	closed    chan struct{} // closed when Close has finished
	closeOnce sync.Once
	closeErr  error
}

// Recovery says that Open found a data directory it could not open and
// started a fresh one.
type Recovery struct {
	MovedTo string    // where the old directory is now
	Cause   error     // why it could not be opened
	At      time.Time // wall-clock time of the move
}

// storeStats holds the figures of the last disk check and counters the
// writer keeps; guarded by Store.statsMu.
type storeStats struct {
	diskBytes, diskPeak, slack int64
	freeBytes                  int64
	checkedAt                  time.Time
	evictions                  uint64
	lastErr                    error
	lastErrAt                  time.Time
}

// hooks are the seams tests use; all nil in production.
type hooks struct {
	// statfs returns the bytes available to the store on dir's file system.
	statfs func(dir string) (int64, error)
	// beforeCommit runs in the writer before each group commit.
	beforeCommit func()
	// afterCheck runs in the writer after each disk check.
	afterCheck func(u usage)
}

// Option changes how Open builds a Store.
type Option func(*Store)

// withHooks installs test seams.
func withHooks(h hooks) Option { return func(s *Store) { s.hooks = h } }

// WithClock sets the clock that timestamps records (their monotonic time
// counts from Open) and ticks the disk checks; the default is the system
// clock. The group commit's window is a real timer whatever the clock.
func WithClock(c clock.Clock) Option { return func(s *Store) { s.clk = c } }

// Errors callers branch on.
var (
	// ErrClosed is returned by operations on a closed store.
	ErrClosed = errors.New("storage: store is closed")
	// ErrUnknownStream names a stream the store does not have.
	ErrUnknownStream = errors.New("storage: unknown stream")
	// ErrNotAssigned is returned by WaitDurable for a sequence number that
	// Append has not given out.
	ErrNotAssigned = errors.New("storage: sequence number not assigned yet")
)

// Stream returns the handle of a stream, or nil if the store has none of
// that name. Look handles up once and keep them: Append on a handle is the
// hot path.
func (s *Store) Stream(name string) *Stream { return s.byName[name] }

// Streams returns the names of the store's streams, highest priority first.
func (s *Store) Streams() []string {
	names := make([]string, len(s.streams))
	for i, st := range s.streams {
		names[i] = st.name
	}
	return names
}

// Boot returns this Open's boot number, the Boot of every record it writes.
func (s *Store) Boot() uint32 { return s.boot }

// StoreID returns the store's incarnation id (and implements Outbox): a
// random non-zero number drawn when the data directory is created (or
// first opened by a build that has ids) and kept across reopens. A
// directory moved aside and started afresh gets a new one, so (id,
// stream, seq) names a record for good, while sequence numbers alone
// restart at 1 with a fresh store.
func (s *Store) StoreID() uint64 { return s.id }

// Recovered returns what Open did about a directory it could not open, or
// nil if it opened the existing one.
func (s *Store) Recovered() *Recovery { return s.recovery }

// Dir returns the data directory.
func (s *Store) Dir() string { return s.cfg.Dir }

// DurableChanged returns a channel that is closed the next time any
// stream's durable watermark advances, or when the store closes; after
// Close it returns a closed channel.
func (s *Store) DurableChanged() <-chan struct{} {
	select {
	case <-s.closed:
		return s.closed
	default:
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.notify
}

func (s *Store) broadcast() {
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// Close stops taking appends, lets the writer commit and sync everything
// queued (and the gap records of any drops), and closes Badger. If ctx
// ends first, the writer stops retrying a failing write and Close reports
// how many queued records were not written. Close returns the first error
// that kept records from becoming durable; calling it again returns the
// same.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		for _, st := range s.streams {
			st.mu.Lock()
			st.closed = true
			st.mu.Unlock()
		}
		close(s.stop)
		var errs []error
		select {
		case <-s.done:
		case <-ctx.Done():
			close(s.abort)
			<-s.done
			errs = append(errs, fmt.Errorf("storage close: %w", ctx.Err()))
		}
		if lost := s.unwritten(); lost > 0 {
			s.statsMu.Lock()
			cause := s.stats.lastErr
			s.statsMu.Unlock()
			if cause == nil {
				cause = errors.New("the writer stopped before writing them")
			}
			errs = append(errs, fmt.Errorf("storage close: %d accepted records were not written: %w", lost, cause))
		}
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("storage close: badger: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		close(s.closed)
		s.broadcast()
		if s.closeErr != nil {
			s.log.Error("storage closed with errors", zap.Error(s.closeErr))
		} else {
			s.log.Info("storage closed", zap.String("dir", s.cfg.Dir))
		}
	})
	return s.closeErr
}

// unwritten counts records given a sequence number but not durable.
func (s *Store) unwritten() uint64 {
	var n uint64
	for _, st := range s.streams {
		n += st.assigned.Load() - st.durable.Load()
	}
	return n
}

func (s *Store) setErr(err error) {
	s.statsMu.Lock()
	s.stats.lastErr, s.stats.lastErrAt = err, s.clk.Now()
	s.statsMu.Unlock()
}

func (s *Store) clearErr() {
	s.statsMu.Lock()
	s.stats.lastErr = nil
	s.statsMu.Unlock()
}
