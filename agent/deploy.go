package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/deploy"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/sync/bundlelink"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/watchdog"
)

// deployer is the shell around models/deploy: the slot store, the bundle
// fetcher, and one driver goroutine per role with a deployment under way
// (deploydriver.go). Its mutex guards drivers and last; each driver owns
// its Deployment.
type deployer struct {
	d     *Daemon
	store *slot.Store
	fetch *bundlelink.Fetcher
	keys  []ed25519.PublicKey
	cfg   deploy.Config
	clean bool // the last run shut down in order (cleanMarker was there)

	ctx    context.Context // ends at close; the drivers' own
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// fetchSem serialises downloads: the fetcher takes one at a time.
	fetchSem chan struct{}

	mu      sync.Mutex
	drivers map[slot.Role]*driver
	last    map[slot.Role]status.DeploymentStatus
	saved   map[slot.Role]deploy.Saved // read at open, resumed at start
	// tapOwner is the driver whose trial holds the router's one tap.
	tapOwner *driver
	// reports wait for the reporter, oldest first (at most maxReports).
	reports    []*pendingReport
	reportKick chan struct{}
	staged     map[string]string // bundle hash -> its staged directory
	contracts  map[bundle.Role]bundle.Contract
	// factory is each rung's configured model file, served when a role
	// has no slot.
	factory   [watchdog.NumBackends]string
	providers []string
}

// cleanMarker, in the slot directory, says the daemon closed its
// deployments in order; it is removed when they start again.
const cleanMarker = "deploy-clean"

func savedPath(dir string, r slot.Role) string {
	return filepath.Join(dir, "deploy-"+string(r)+".json")
}

// roleBackend maps a slot role to its rung.
func roleBackend(r slot.Role) watchdog.Backend {
	switch r {
	case slot.Shadow:
		return watchdog.Shadow
	case slot.Degraded:
		return watchdog.Degraded
	}
	return watchdog.Primary
}

// openSlots is the start step before the models load: it opens the slot
// store, points each role with an active slot at that slot's model (the
// configured file stays the factory default), and makes the fetcher, whose
// subscriptions the link takes at its start. A store that does not open
// leaves the daemon on its configured models, without deployments, and
// saying so.
func (d *Daemon) openSlots(context.Context) error {
	dc := d.cfg.Deployments
	st, err := slot.Open(d.cfg.SlotDir())
	if err != nil {
		d.deployWhy = fmt.Sprintf("slot store %s: %v", d.cfg.SlotDir(), err)
		d.warnings = append(d.warnings, "model deployments off: "+d.deployWhy)
		d.log.Error("model slots unavailable; serving the configured models", zap.Error(err))
		return nil
	}
	d.slots = st // tied to the store by carrySlotTable, once it is open
	m := &deployer{d: d, store: st, cfg: dc.Lifecycle.Config, drivers: map[slot.Role]*driver{},
		last: map[slot.Role]status.DeploymentStatus{}, saved: map[slot.Role]deploy.Saved{},
		fetchSem: make(chan struct{}, 1), reportKick: make(chan struct{}, 1), staged: map[string]string{}}
	for _, p := range dc.TrustedKeys {
		k, err := bundle.ReadPublicKey(p)
		if err != nil {
			return fmt.Errorf("deployments.trusted_keys: %w", err)
		}
		m.keys = append(m.keys, k)
	}
	for _, r := range slot.Roles {
		bc := d.cfg.Models.backend(roleBackend(r))
		m.factory[roleBackend(r)] = d.cfg.ModelPath(bc.Path)
		if p, ok := m.activeModel(r); ok {
			d.log.Info("model from its slot", zap.String("role", string(r)), zap.String("path", p), zap.String("factory", d.cfg.ModelPath(bc.Path)))
			bc.Path = p
		}
	}
	m.fetch, err = bundlelink.NewFetcher(bundlelink.FetcherConfig{
		Vehicle: d.cfg.VehicleID, Link: deployLink{d}, Dir: d.cfg.BundleStagingDir(),
		Preflight: m.preflight, Clock: clock.Real(), Log: d.log.Named("bundles"),
	})
	if err != nil {
		d.deployWhy = err.Error()
		d.warnings = append(d.warnings, "model deployments off: "+err.Error())
		return nil
	}
	m.readSaved()
	d.models = m
	return nil
}

// backend returns the configuration of rung b.
func (m *ModelsConfig) backend(b watchdog.Backend) *BackendConfig {
	switch b {
	case watchdog.Shadow:
		return &m.Shadow
	case watchdog.Degraded:
		return &m.Degraded
	}
	return &m.Primary
}

// activeModel is the ONNX file of r's active slot.
func (m *deployer) activeModel(r slot.Role) (string, bool) {
	rs, err := m.store.Slots(r)
	if err != nil || rs.Active == nil {
		return "", false
	}
	f, ok := modelFile(rs.Active.Model)
	if !ok {
		return "", false
	}
	p, err := m.store.ActivePath(r, f)
	return p, err == nil
}

// modelFile is the version's ONNX file: the first listed with that
// extension (a bundle's manifest names one model file).
func modelFile(v slot.Version) (string, bool) {
	for _, f := range v.Files {
		if filepath.Ext(f.Path) == ".onnx" {
			return f.Path, true
		}
	}
	return "", false
}

// readSaved reads the persisted deployments and the clean marker.
func (m *deployer) readSaved() {
	dir := m.store.Dir()
	_, err := os.Stat(filepath.Join(dir, cleanMarker))
	m.clean = err == nil
	for _, r := range slot.Roles {
		b, err := os.ReadFile(savedPath(dir, r))
		if err != nil {
			continue
		}
		s, err := deploy.DecodeSaved(b)
		if err != nil {
			m.d.log.Error("saved deployment unreadable; dropped", zap.String("role", string(r)), zap.Error(err))
			continue
		}
		m.saved[r] = s
	}
}

// deployLink sends the fetcher's requests through the link, once it runs.
type deployLink struct{ d *Daemon }

func (l deployLink) PublishBulk(ctx context.Context, topic string, payload []byte) error {
	c := l.d.cloud
	if c == nil {
		return errors.New("sync is off: " + l.d.syncWhy)
	}
	return c.up.PublishBulk(ctx, topic, payload)
}

// deploySubscriptions are the fetcher's, for the link's start.
func (d *Daemon) deploySubscriptions() []edge.Subscription {
	if d.models == nil {
		return nil
	}
	var subs []edge.Subscription
	for _, s := range d.models.fetch.Subscriptions() {
		subs = append(subs, edge.Subscription(s))
	}
	return subs
}

// startDeployments resumes the persisted deployments, each on its driver.
func (d *Daemon) startDeployments(context.Context) error {
	m := d.models
	if m == nil {
		return nil
	}
	m.contracts, m.providers = m.readContracts(), m.readProviders()
	if d.swap == nil {
		d.swap = routerSwap{d.router}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.mu.Lock()
	m.ctx, m.cancel = ctx, cancel
	m.mu.Unlock()
	os.Remove(filepath.Join(m.store.Dir(), cleanMarker))
	m.wg.Add(1)
	go m.reporter()
	for r, s := range m.saved {
		m.resume(r, s)
	}
	m.saved = nil
	return nil
}

// closeDeployments stops every driver (a trial is stopped, a download
// abandoned where it stands) and marks the stop as clean.
func (d *Daemon) closeDeployments(ctx context.Context) error {
	m := d.models
	if m == nil || m.cancel == nil {
		return nil
	}
	m.cancel()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("model deployments: %w", ctx.Err())
	}
	return writeFileAtomic(filepath.Join(m.store.Dir(), cleanMarker), []byte("clean\n"))
}

// resume brings back a saved deployment of role r.
func (m *deployer) resume(r slot.Role, s deploy.Saved) {
	dep, err := deploy.Restore(m.cfg, s)
	if err != nil {
		m.d.log.Error("saved deployment refused; dropped", zap.String("role", string(r)), zap.Error(err))
		return
	}
	pos := m.position(r, s.Spec.Hash)
	rd := dep.Step(time.Now(), deploy.Restarted{Slot: pos, Clean: m.clean})
	m.d.log.Info("deployment resumed", zap.Stringer("spec", s.Spec), zap.Stringer("state", s.State),
		zap.Stringer("slot", pos), zap.Bool("clean", m.clean))
	m.run(r, dep, rd)
}

// position is where the slot table has the bundle hash in role r.
func (m *deployer) position(r slot.Role, hash string) deploy.SlotPosition {
	rs, err := m.store.Slots(r)
	if err != nil {
		return deploy.SlotNone
	}
	switch {
	case rs.Candidate != nil && rs.Candidate.Model.Hash == hash:
		return deploy.SlotCandidate
	case rs.Active != nil && rs.Active.Model.Hash == hash && rs.Active.State == slot.Committed:
		return deploy.SlotCommitted
	case rs.Active != nil && rs.Active.Model.Hash == hash:
		return deploy.SlotActive
	}
	return deploy.SlotNone
}

// writeFileAtomic writes b to path: a temporary file, fsynced, renamed
// over path, and the directory fsynced.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func (l deployLink) TakeBulk(ctx context.Context, n int) error {
	c := l.d.cloud
	if c == nil {
		return errors.New("sync is off: " + l.d.syncWhy)
	}
	return c.up.TakeBulk(ctx, n)
}
