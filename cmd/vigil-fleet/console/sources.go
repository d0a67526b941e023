package console

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/blob"
	"github.com/vigil-av/vigil/sync/presence"
	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/store"
	"github.com/vigil-av/vigil/sync/sink"
)

// PresenceSource gives every vehicle with a status or a heartbeat,
// judged now (Live; presence.Watcher's results fit too).
type PresenceSource interface {
	Vehicles() []presence.Vehicle
}

// TelemetrySource is the ingester's sink: what it holds per vehicle,
// store and stream, and the records themselves.
type TelemetrySource interface {
	Report() (sink.Report, error)
	// Records returns the stored records of one store's stream after
	// seq after, at most max (0: all), in seq order.
	Records(vehicle string, store uint64, stream string, after uint64, max int) ([]batch.Record, error)
}

// CheckpointSource is the fleet's checkpoint catalog (*blob.Catalog).
type CheckpointSource interface {
	Vehicles() ([]string, error)
	Manifests(vehicle string) ([]*manifest.Manifest, error)
	LastVerification(vehicle, store, id string) (blob.Verification, bool, error)
}

// RolloutSource is the rollouts directory (*store.Dir).
type RolloutSource interface {
	List() ([]*rollout.Rollout, error)
}

// DrillSource is where drill results come from (DrillDir: the fleet's
// drill store). Describe says what it reads, for the page; Drills
// returns one vehicle's results, newest first. A source that
// is also an http.Handler serves its report pages and plots under
// /drills/ (Drill.Report links there), behind the console's access rules
// and for GET and HEAD only.
type DrillSource interface {
	Describe() string
	Drills(vehicle string) ([]Drill, error)
}

// NoDrills is the DrillSource when no drill store is configured: it has
// none, and says so.
type NoDrills struct{}

// Describe implements DrillSource.
func (NoDrills) Describe() string {
	return "not configured (--drills or --sink)"
}

// Drills implements DrillSource.
func (NoDrills) Drills(string) ([]Drill, error) { return nil, nil }

// SinkDir is a TelemetrySource over a sink directory that an ingester
// (vigil-fleet ingest) writes. The sink keeps its state in memory, so
// SinkDir opens it again when its report is older than Every.
//
// Opening a sink also removes the temporary files a crash left in it; an
// ingester writing at that instant (a heartbeat.json being replaced) has
// that write fail and logs "heartbeat not recorded", and the next
// heartbeat is recorded as usual. Every bounds how often that can
// happen.
type SinkDir struct {
	dir   string
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	s      *sink.Sink
	rep    sink.Report
	opened time.Time
}

// DefaultSinkEvery is how old a SinkDir's report may get by default.
const DefaultSinkEvery = 15 * time.Second

// OpenSinkDir checks that dir is a directory (it creates nothing) and
// returns a SinkDir over it; every <= 0 means DefaultSinkEvery.
func OpenSinkDir(dir string, every time.Duration, now func() time.Time) (*SinkDir, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	if every <= 0 {
		every = DefaultSinkEvery
	}
	if now == nil {
		now = time.Now
	}
	return &SinkDir{dir: dir, every: every, now: now}, nil
}

// Dir is the sink directory.
func (d *SinkDir) Dir() string { return d.dir }

func (d *SinkDir) current() (*sink.Sink, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s != nil && d.now().Sub(d.opened) < d.every {
		return d.s, nil
	}
	s, err := sink.Open(d.dir, sink.Options{})
	if err != nil {
		if d.s != nil {
			return d.s, fmt.Errorf("sink %s: %w (showing the state of %s)", d.dir, err, d.opened.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("sink %s: %w", d.dir, err)
	}
	d.s, d.rep, d.opened = s, s.Report(), d.now()
	return s, nil
}

// Report implements TelemetrySource.
func (d *SinkDir) Report() (sink.Report, error) {
	_, err := d.current()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rep, err
}

// Records implements TelemetrySource: it reads the files as they are
// now, whatever the age of the report.
func (d *SinkDir) Records(vehicle string, store uint64, stream string, after uint64, max int) ([]batch.Record, error) {
	s, err := d.current()
	if s == nil {
		return nil, err
	}
	return s.ReadStore(vehicle, store, stream, after, max)
}

// CatalogDir is a CheckpointSource over the checkpoint store's directory
// (as `vigil-fleet ingest` writes it). A directory that does not exist
// yet holds no checkpoint: serve may start before the ingester.
type CatalogDir struct{ root string }

// NewCatalogDir returns a CatalogDir over root.
func NewCatalogDir(root string) *CatalogDir { return &CatalogDir{root: root} }

// catalog opens the catalog, nil while root does not exist.
func (d *CatalogDir) catalog() (*blob.Catalog, error) {
	st, err := os.Stat(d.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", d.root)
	}
	return blob.NewCatalog(d.root)
}

// Vehicles implements CheckpointSource.
func (d *CatalogDir) Vehicles() ([]string, error) {
	c, err := d.catalog()
	if c == nil {
		return nil, err
	}
	return c.Vehicles()
}

// Manifests implements CheckpointSource.
func (d *CatalogDir) Manifests(vehicle string) ([]*manifest.Manifest, error) {
	c, err := d.catalog()
	if c == nil {
		return nil, err
	}
	return c.Manifests(vehicle)
}

// LastVerification implements CheckpointSource.
func (d *CatalogDir) LastVerification(vehicle, store, id string) (blob.Verification, bool, error) {
	c, err := d.catalog()
	if c == nil {
		return blob.Verification{}, false, err
	}
	return c.LastVerification(vehicle, store, id)
}

// RolloutDir is a RolloutSource over the rollouts directory; one that
// does not exist yet holds no rollout.
type RolloutDir struct{ root string }

// NewRolloutDir returns a RolloutDir over root.
func NewRolloutDir(root string) *RolloutDir { return &RolloutDir{root: root} }

// List implements RolloutSource.
func (d *RolloutDir) List() ([]*rollout.Rollout, error) {
	if _, err := os.Stat(d.root); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	s, err := store.Open(d.root)
	if err != nil {
		return nil, err
	}
	return s.List()
}
