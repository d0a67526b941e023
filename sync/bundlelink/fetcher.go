package bundlelink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/sync/batch"
)

// Link is what the Fetcher sends its requests through, *edge.Uploader.
// Before a request for chunks, the Fetcher calls TakeBulk with the bytes
// of the chunks it asks for, so that the download takes from the link's
// one budget what it will bring: TakeBulk waits behind telemetry and for
// that many bytes of the rate cap (any number: edge takes more than its
// bucket in pieces) and publishes nothing. PublishBulk then publishes
// the request, HeaderBytes (90) long, and waits likewise and for the
// broker's PUBACK. Chunk requests are published in the background, so
// PublishBulk is called from several goroutines at once (up to Window
// and more) and must be safe for that; the next request's TakeBulk does
// not wait for the last one's PUBACK. An index request takes nothing
// beforehand and is published in the download's own goroutine.
type Link interface {
	TakeBulk(ctx context.Context, n int) error
	PublishBulk(ctx context.Context, topic string, payload []byte) error
}

// Subscription is a topic filter and its handler, as edge.Subscription
// (the same fields: convert with edge.Subscription(s)). This package does
// not import sync/edge, so that the fleet side, which links the Server,
// links no Badger.
type Subscription struct {
	Topic   string
	Handler func(topic string, payload []byte)
}

// Preflight decides from a bundle's manifest, before its first chunk
// moves, whether the vehicle takes it; an error refuses it. CheckPolicy
// makes one from the vehicle's bundle.Policy.
type Preflight func(m *bundle.Manifest) error

// Defaults of FetcherConfig.
const (
	DefaultWindow        = 4
	DefaultAnswerTimeout = 10 * time.Second
	DefaultStallTimeout  = 5 * time.Minute
	DefaultMaxCorrupt    = 8
)

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// Vehicle is the vehicle id: the topics' level.
	Vehicle string
	Link    Link
	// Dir is the staging directory: each download goes to Dir/<hash>/
	// (see doc.go for what it holds).
	Dir string
	// ChunkBytes is the chunk size asked for, a multiple of ChunkUnit up
	// to MaxChunkBytes; 0 means MaxChunkBytes. A download resumes at the
	// size it started with.
	ChunkBytes int
	// Window is the most requests awaiting their answers; 0 means
	// DefaultWindow (4).
	Window int
	// AnswerTimeout is how long a request waits for its answers (counted
	// from the broker's PUBACK) before what did not come is asked for
	// again; 0 means DefaultAnswerTimeout (10 s).
	AnswerTimeout time.Duration
	// StallTimeout ends a Fetch with ErrStalled when nothing new arrived
	// for that long (the link or the fleet side is down): the caller
	// fetches again later, and the download resumes. 0 means
	// DefaultStallTimeout (5 min).
	StallTimeout time.Duration
	// MaxCorrupt ends a Fetch with ErrCorrupt when one chunk (or the
	// index) came damaged that many times; 0 means DefaultMaxCorrupt (8).
	MaxCorrupt int
	// Preflight, when set, is asked about the manifest before the first
	// chunk (after the index, and again when a download resumes); the
	// free disk check (FreeSpace) follows it.
	Preflight Preflight
	// FreeSpace returns the bytes free for an unprivileged user on the
	// file system of path; nil means statfs(2). A test's seam.
	FreeSpace func(path string) (uint64, error)
	// Clock dates the deadlines and the progress file; nil means the
	// system clock. (The waits are real timers.)
	Clock clock.Clock
	Log   *zap.Logger
}

func (c *FetcherConfig) defaults() error {
	switch {
	case !batch.ValidName(c.Vehicle):
		return fmt.Errorf("bundle fetcher: Vehicle: bad vehicle id %q", c.Vehicle)
	case c.Link == nil:
		return errors.New("bundle fetcher: Link: none given")
	case c.Dir == "":
		return errors.New("bundle fetcher: Dir: no staging directory")
	case c.ChunkBytes != 0 && !ValidChunkBytes(c.ChunkBytes):
		return fmt.Errorf("bundle fetcher: ChunkBytes %d: want a multiple of %d from %d to %d", c.ChunkBytes, ChunkUnit, MinChunkBytes, MaxChunkBytes)
	case c.Window < 0 || c.AnswerTimeout < 0 || c.StallTimeout < 0 || c.MaxCorrupt < 0:
		return fmt.Errorf("bundle fetcher: negative Window %d, AnswerTimeout %v, StallTimeout %v or MaxCorrupt %d", c.Window, c.AnswerTimeout, c.StallTimeout, c.MaxCorrupt)
	}
	if c.ChunkBytes == 0 {
		c.ChunkBytes = MaxChunkBytes
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	c.AnswerTimeout = orDefault(c.AnswerTimeout, DefaultAnswerTimeout)
	c.StallTimeout = orDefault(c.StallTimeout, DefaultStallTimeout)
	if c.MaxCorrupt == 0 {
		c.MaxCorrupt = DefaultMaxCorrupt
	}
	if c.FreeSpace == nil {
		c.FreeSpace = statfsFree
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	return nil
}

// The errors a Fetch ends with that callers branch on.
var (
	// ErrUnknownBundle: the fleet side holds no bundle with the hash.
	ErrUnknownBundle = errors.New("the fleet side has no bundle with this hash")
	// ErrPreflight wraps the Preflight's refusal.
	ErrPreflight = errors.New("bundle refused before download")
	// ErrDiskSpace: less free disk than twice the bundle's size (less
	// what is staged already).
	ErrDiskSpace = errors.New("not enough free disk for the bundle")
	// ErrDiskFull: a write to the staging directory failed for want of
	// space; what was staged is kept, and a later Fetch resumes.
	ErrDiskFull = errors.New("disk full while staging the bundle")
	// ErrStalled: nothing arrived for StallTimeout.
	ErrStalled = errors.New("bundle download stalled")
	// ErrCorrupt: a chunk came damaged MaxCorrupt times.
	ErrCorrupt = errors.New("bundle chunk damaged again and again")
	// ErrBusy: a Fetch is in progress already.
	ErrBusy = errors.New("a bundle download is in progress")
)

// State is where a Fetcher stands.
type State string

// The states of a Fetcher.
const (
	StateIdle        State = "idle"        // no Fetch has run
	StateIndex       State = "index"       // fetching the manifest and chunk table
	StateDownloading State = "downloading" // fetching chunks
	StateComplete    State = "complete"    // the last Fetch staged the whole bundle
	StateFailed      State = "failed"      // the last Fetch ended with LastError
)

// Progress is a Fetcher's download, for status.
type Progress struct {
	Bundle     string // the hash; "" while idle
	Name       string // once the manifest is known
	Version    uint64
	State      State
	Chunks     int
	ChunksDone int // staged: written, synced, recorded
	Bytes      int64
	BytesDone  int64
	// Figures of the current Fetch.
	Requests   uint64 // requests published
	IndexParts uint64 // index parts taken
	Received   uint64 // chunks taken and staged
	Duplicates uint64 // chunks that came again after they were staged
	Corrupt    uint64 // chunks refused: damaged in flight or on the fleet side
	Timeouts   uint64 // requests whose answers did not all come in time
	Ignored    uint64 // answers of no download in progress, or undecodable
	LastError  string
}

// Result is a staged bundle.
type Result struct {
	Hash     string
	Manifest *bundle.Manifest
	// Dir holds bundle.json and the bundle's files: bundle.Open(Dir),
	// then Verify, before anything is installed from it.
	Dir string
}

// answer is a decoded message of the data topic.
type answer struct {
	env     Envelope
	damaged bool // Decode said ErrHash
}

// Fetcher downloads bundles, one at a time, into its staging directory.
// Route Subscriptions through the vehicle's link, then call Fetch.
type Fetcher struct {
	cfg   FetcherConfig
	clock clock.Clock
	log   *zap.Logger
	run   sync.Mutex  // held by Fetch
	ans   chan answer // the data topic's answers for the download in progress
	tag   uint32      // the last Fetch's tag

	mu       sync.Mutex // guards progress and active
	progress Progress
	active   string // the hash being fetched
}

// NewFetcher builds a Fetcher; it fetches nothing until Fetch.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Fetcher{cfg: cfg, clock: clock.Or(cfg.Clock), log: cfg.Log.Named("bundlefetch"),
		ans: make(chan answer, 256), progress: Progress{State: StateIdle}, tag: rand.Uint32()}, nil
}

// Subscriptions are the data topic's, for the link's connection
// (edge.Config.Subscriptions): the handler hands each answer to the
// download in progress and never blocks.
func (f *Fetcher) Subscriptions() []Subscription {
	return []Subscription{{Topic: DataTopic(f.cfg.Vehicle), Handler: f.onData}}
}

func (f *Fetcher) onData(_ string, payload []byte) {
	e, err := Decode(payload)
	damaged := errors.Is(err, ErrHash)
	f.mu.Lock()
	active := f.active
	f.mu.Unlock()
	if err != nil && !damaged || active == "" || e.Bundle != active || e.Type < TypeIndex {
		f.count(func(p *Progress) { p.Ignored++ })
		return
	}
	select {
	case f.ans <- answer{env: e, damaged: damaged}:
	default: // asked for again at its timeout
		f.count(func(p *Progress) { p.Ignored++ })
	}
}

// Progress returns the download's figures: the one in progress, or the
// last one.
func (f *Fetcher) Progress() Progress {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.progress
}

func (f *Fetcher) count(fn func(*Progress)) {
	f.mu.Lock()
	fn(&f.progress)
	f.mu.Unlock()
}

// Fetch downloads the bundle whose manifest hashes to hash into
// Dir/<hash>/ and returns it staged, or resumes that download where an
// earlier one (in this process or another) left it: the index first
// (unless staged already), then Preflight and the free disk check, then
// every chunk not staged yet. It returns when the bundle is staged, or
// with the error that ended it (ctx's included); what was staged stays
// for the next Fetch. Only one Fetch runs at a time (ErrBusy).
func (f *Fetcher) Fetch(ctx context.Context, hash string) (*Result, error) {
	if !ValidHash(hash) {
		return nil, fmt.Errorf("bundle fetch: hash %q is not 64 lower-case hex digits (bundle.Manifest.Hash)", hash)
	}
	if !f.run.TryLock() {
		return nil, fmt.Errorf("bundle fetch %.12s: %w", hash, ErrBusy)
	}
	defer f.run.Unlock()
	f.drain()
	f.mu.Lock()
	f.active = hash
	f.progress = Progress{Bundle: hash, State: StateIndex}
	f.mu.Unlock()
	res, err := f.fetch(ctx, hash)
	f.mu.Lock()
	f.active = ""
	if err != nil {
		f.progress.State, f.progress.LastError = StateFailed, err.Error()
	} else {
		f.progress.State = StateComplete
	}
	f.mu.Unlock()
	return res, err
}

// drain drops answers left from an earlier Fetch.
func (f *Fetcher) drain() {
	for {
		select {
		case <-f.ans:
		default:
			return
		}
	}
}

func (f *Fetcher) fetch(ctx context.Context, hash string) (*Result, error) {
	f.tag++
	d := &download{f: f, hash: hash, tag: f.tag, last: f.clock.Now()}
	st, err := openStaging(f.cfg.Dir, hash)
	if err != nil {
		return nil, err
	}
	if st == nil {
		x, err := d.fetchIndex(ctx)
		if err != nil {
			return nil, err
		}
		if err := f.preflight(x, 0); err != nil {
			return nil, err
		}
		if st, err = createStaging(f.cfg.Dir, x, f.clock.Now()); err != nil {
			return nil, diskError(err, x)
		}
	} else if !st.p.Complete {
		if err := f.preflight(st.x, st.doneBytes()); err != nil {
			st.close()
			return nil, err
		}
	}
	defer st.close()
	f.count(func(p *Progress) { p.setStaging(st) })
	if !st.p.Complete {
		d.st = st
		if err := d.fetchChunks(ctx); err != nil {
			return nil, err
		}
	}
	f.log.Info("bundle staged", zap.String("bundle", hash), zap.String("name", st.x.Manifest.Name), zap.Uint64("version", st.x.Manifest.Version))
	return &Result{Hash: hash, Manifest: st.x.Manifest, Dir: filepath.Join(st.dir, stagedBundle)}, nil
}

func (p *Progress) setStaging(st *staging) {
	p.Name, p.Version = st.x.Manifest.Name, st.x.Manifest.Version
	p.State = StateDownloading
	p.Chunks, p.ChunksDone = len(st.x.Spans), st.ndone
	p.Bytes, p.BytesDone = Size(st.x.Manifest), st.doneBytes()
}

// preflight asks the caller's Preflight, then checks the free disk: twice
// the bundle's size, less what is staged already.
func (f *Fetcher) preflight(x *Index, staged int64) error {
	m := x.Manifest
	if f.cfg.Preflight != nil {
		if err := f.cfg.Preflight(m); err != nil {
			return fmt.Errorf("%w: bundle %s v%d (%.12s): %w", ErrPreflight, m.Name, m.Version, x.Hash, err)
		}
	}
	need := 2*Size(m) - staged
	at := existingAncestor(f.cfg.Dir)
	free, err := f.cfg.FreeSpace(at)
	if err != nil {
		return fmt.Errorf("bundle %s v%d: free space of %s: %w", m.Name, m.Version, at, err)
	}
	if int64(free) < need {
		return fmt.Errorf("%w: bundle %s v%d needs %d bytes free in %s (twice its %d bytes, less %d staged), and %d are: free some space, then fetch again",
			ErrDiskSpace, m.Name, m.Version, need, f.cfg.Dir, Size(m), staged, free)
	}
	return nil
}

// existingAncestor is dir, or its nearest ancestor that exists.
func existingAncestor(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return dir
		}
		dir = up
	}
}

// Discard removes the staged download of hash (after it was installed, or
// refused by bundle.Verify). It refuses while a Fetch runs (ErrBusy).
func (f *Fetcher) Discard(hash string) error {
	if !ValidHash(hash) {
		return fmt.Errorf("bundle discard: hash %q is not 64 lower-case hex digits", hash)
	}
	if !f.run.TryLock() {
		return fmt.Errorf("bundle discard %.12s: %w", hash, ErrBusy)
	}
	defer f.run.Unlock()
	if err := os.RemoveAll(filepath.Join(f.cfg.Dir, hash)); err != nil {
		return fmt.Errorf("bundle discard %.12s: %w", hash, err)
	}
	return nil
}
