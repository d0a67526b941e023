package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/sync/bundlelink"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
	"github.com/vigil-av/vigil/sync/sink"
	"github.com/vigil-av/vigil/watchdog"
)

// deployRig is a command rig (a daemon over mutual TLS to a broker with
// the fleet's ACL) with a trusted model-signing key, and the fleet side's
// bundle server over a store of bundles signed in the test.
type deployRig struct {
	*commandRig
	modelPriv ed25519.PrivateKey
	storeDir  string
	reports   chan deploywire.Report
	srv       *bundlelink.Server
}

func newDeployRig(t *testing.T, tune func(*Config)) *deployRig {
	t.Helper()
	r := &deployRig{commandRig: newCommandRig(t), storeDir: t.TempDir(), reports: make(chan deploywire.Report, 64)}
	pub, priv, _, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.modelPriv = priv
	keyFile := filepath.Join(t.TempDir(), "model.pub")
	if err := os.WriteFile(keyFile, bundle.MarshalPublicKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	dc := &r.cfg.Deployments
	dc.TrustedKeys = []string{keyFile}
	for k, v := range map[string]string{
		"trial_min_requests": "5", "trial_min_duration": "1s", "trial_sample_rate": "1",
		"latency_fraction": "1", "gate_requests": "20", "gate_duration": "2s",
		"timeout_downloading": "20s", "timeout_trial": "15s", "timeout_promoted": "15s",
	} {
		if err := dc.Lifecycle.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if tune != nil {
		tune(&r.cfg)
	}
	store, err := bundlelink.OpenStore(r.storeDir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := bundlelink.NewServer(bundlelink.ServerConfig{Broker: r.broker.URL(), TLS: r.pki.ClientTLS("fleet"),
		Store: store, ClientID: "fleet-bundles", ReconnectMax: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	waitFor(t, 10*time.Second, "the bundle server subscribed", func() (bool, string) { return srv.Stats().Subscribed, "" })
	// The fleet's ingester acknowledges the telemetry, which bulk
	// traffic (the download) waits behind.
	sk, err := sink.Open(t.TempDir(), sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ingest.Config{Broker: r.broker.URL(), TLS: r.pki.ClientTLS("ingest"), ClientID: "fleet-ingest",
		PublishTimeout: 2 * time.Second, ConnectTimeout: 2 * time.Second, ReconnectMax: 500 * time.Millisecond}, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := cmdlink.DialLink(ctx, cmdlink.LinkConfig{Broker: r.broker.URL(), TLS: r.pki.ClientTLS("fleet"), ClientID: "fleet-reports"},
		[]string{deploywire.ReportFilter}, func(_ string, p []byte) {
			if rep, err := deploywire.DecodeReport(p); err == nil {
				select {
				case r.reports <- rep:
				default:
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return r
}

// pack signs the demo's rollout model (demo.GenerateRollout) as bundle
// "pilotnet" version v with priv, packs it into the store and returns its
// hash.
func (r *deployRig) pack(t *testing.T, model string, v uint64, priv ed25519.PrivateKey) string {
	t.Helper()
	onnx, err := demo.GenerateRollout(model)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundle.ContractFromONNX(onnx)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(onnx)
	now := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	m := &bundle.Manifest{Format: bundle.FormatVersion, Name: "pilotnet", Version: v, Roles: []bundle.Role{bundle.RolePrimary},
		Model: "model.onnx", Contract: c, Files: []bundle.File{{Path: "model.onnx", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(onnx))}},
		MinVigil: "0.1.0-dev", Providers: []string{"cpu"}, Created: now, Expires: now.Add(24 * time.Hour)}
	if err := bundle.Sign(m, priv); err != nil {
		t.Fatal(err)
	}
	hash, err := m.Hash()
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "model.onnx"), onnx, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.Pack(&buf, m, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s-%d.tar", model, v)
	tmp := filepath.Join(r.storeDir, "."+name)
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.storeDir, name)); err != nil {
		t.Fatal(err)
	}
	return hash
}

// deploy sends a signed model-deploy of hash (pilotnet v) to primary.
func (r *deployRig) deploy(t *testing.T, hash string, v uint64, skipTrial bool) (command.Response, string) {
	t.Helper()
	args, err := deploywire.DeployArgs{BundleHash: hash, Name: "pilotnet", Version: v, Role: "primary", SkipTrial: skipTrial}.Args()
	if err != nil {
		t.Fatal(err)
	}
	return r.send(r.priv, command.ModelDeploy, args)
}

// waitReport waits for the retained report of hash in state want.
func (r *deployRig) waitReport(t *testing.T, hash string, want deploywire.State) deploywire.Report {
	t.Helper()
	deadline := time.After(20 * time.Second)
	var last deploywire.Report
	for {
		select {
		case rep := <-r.reports:
			last = rep
			if rep.BundleHash == hash && rep.State == want {
				return rep
			}
		case <-deadline:
			t.Fatalf("no deploy report %s for %s; last: %+v", want, hash[:8], last)
		}
	}
}

func roleStatus(st status.Status, role string) (status.DeploymentStatus, bool) {
	for _, s := range st.Deployments.Roles {
		if s.Role == role {
			return s, true
		}
	}
	return status.DeploymentStatus{}, false
}

// waitDeployment waits until the primary's deployment of hash is over
// and returns its status.
func waitDeployment(t *testing.T, c *client.Client, hash string) status.DeploymentStatus {
	t.Helper()
	var got status.DeploymentStatus
	waitFor(t, 25*time.Second, "the deployment's outcome", func() (bool, string) {
		s, ok := roleStatus(fetchStatus(t, c), "primary")
		got = s
		return ok && s.Hash == hash && !s.Running, fmt.Sprintf("%+v", s)
	})
	return got
}

// load runs requests at 30 Hz with the watchdog's deadline until stop,
// counting those not answered OK by their deadline.
type load struct {
	stop   chan struct{}
	done   chan struct{}
	sent   atomic.Int64
	missed atomic.Int64
}

func startLoad(t *testing.T, c *client.Client, budget time.Duration) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), budget+5*time.Second)
			resp, err := c.Infer(ctx, &client.InferRequest{Budget: budget, Inputs: randomFrame()})
			cancel()
			l.sent.Add(1)
			if err != nil || !resp.OK() {
				l.missed.Add(1)
			}
		}
	}()
	t.Cleanup(l.end)
	return l
}

var loadOnce sync.Mutex

func (l *load) end() {
	loadOnce.Lock()
	defer loadOnce.Unlock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// TestModelDeployUnknownKey: a bundle signed by a key the vehicle does not
// trust is refused before its first chunk; nothing in the slot table
// changes and the old model keeps serving.
func TestModelDeployUnknownKey(t *testing.T) {
	r := newDeployRig(t, nil)
	_, other, _, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	hash := r.pack(t, demo.PrimaryV2, 2, other)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	tableBefore := d.models.store.Table()
	modelBefore := d.router.Backend(0).Info().Model.Path

	resp, _ := r.deploy(t, hash, 2, false)
	if !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	s := waitDeployment(t, c, hash)
	if s.State != "failed" || !strings.Contains(s.Reason, "key") {
		t.Fatalf("deployment: %+v", s)
	}
	r.waitReport(t, hash, deploywire.FailedState)
	after := d.models.store.Table()
	if fmt.Sprint(after) != fmt.Sprint(tableBefore) {
		t.Fatalf("slot table changed:\n%+v\n%+v", tableBefore, after)
	}
	if p := d.router.Backend(0).Info().Model.Path; p != modelBefore {
		t.Fatalf("primary serves %s, was %s", p, modelBefore)
	}
	if entries, _ := os.ReadDir(filepath.Join(r.cfg.BundleStagingDir(), hash)); len(entries) > 0 {
		t.Fatalf("staged after the refusal: %v", entries)
	}
}

// TestModelDeployRefusals: without trusted model-signing keys every
// model-deploy is refused saying so, and bad arguments are bad_args;
// neither starts a deployment.
func TestModelDeployRefusals(t *testing.T) {
	r := newDeployRig(t, func(c *Config) { c.Deployments.TrustedKeys = nil })
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	_, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	resp, _ := r.deploy(t, hash, 2, false)
	if resp.OK || !strings.Contains(resp.Message, "trusted model-signing keys") {
		t.Fatalf("model-deploy without keys: %+v", resp)
	}
	resp, _ = r.send(r.priv, command.ModelDeploy, map[string]string{"bundle": "nothex", "name": "pilotnet", "version": "2", "role": "primary"})
	if resp.OK || resp.Code != command.CodeBadArgs {
		t.Fatalf("model-deploy with a bad hash: %+v", resp)
	}
	st := fetchStatus(t, c)
	if st.Deployments.State != "refusing" || len(st.Deployments.Roles) != 0 {
		t.Fatalf("deployments: %+v", st.Deployments)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func servedModel(d *Daemon) string { return d.router.Backend(watchdog.Primary).Info().Model.Path }

// TestModelDeployBadBundle: primary-bad diverges in its trial: the
// deployment ends trial_failed, the version is quarantined, and the
// factory model never stopped serving. Deployed again it is refused as
// quarantined, unless the signed command forces it (force_quarantined):
// then it is installed and trialled again.
func TestModelDeployBadBundle(t *testing.T) {
	r := newDeployRig(t, nil)
	hash := r.pack(t, demo.PrimaryBad, 2, r.modelPriv)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	factory := servedModel(d)
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, hash, 2, false); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	s := waitDeployment(t, c, hash)
	ld.end()
	if s.State != "trial_failed" || s.Trial.Divergent == 0 || s.Quarantine == "" {
		t.Fatalf("deployment: %+v", s)
	}
	r.waitReport(t, hash, deploywire.TrialFailed)
	tb := d.models.store.Table()
	if !slices.ContainsFunc(tb.Quarantine, func(q slot.Quarantined) bool { return q.Hash == hash }) {
		t.Fatalf("not quarantined: %+v", tb.Quarantine)
	}
	if rs := tb.Roles[slot.Primary]; rs != nil && (rs.Active != nil || rs.Candidate != nil) {
		t.Fatalf("slots after a failed trial: %+v", rs)
	}
	if p := servedModel(d); p != factory {
		t.Fatalf("primary serves %s, was %s", p, factory)
	}
	if fetchStatus(t, c).Deployments.Quarantined != 1 {
		t.Fatalf("status: %+v", fetchStatus(t, c).Deployments)
	}

	// The quarantined version again: refused at once, saying how to force
	// it; with force_quarantined the signed command installs it and it
	// goes through its trial again (and fails it again).
	first, _ := roleStatus(fetchStatus(t, c), "primary")
	if resp, _ := r.deploy(t, hash, 2, false); resp.OK || !strings.Contains(resp.Message, "quarantined") || !strings.Contains(resp.Message, "force_quarantined=true") {
		t.Fatalf("model-deploy of a quarantined version: %+v", resp)
	}
	if s, _ := roleStatus(fetchStatus(t, c), "primary"); s.ID != first.ID {
		t.Fatalf("a refused model-deploy started a deployment: %+v", s)
	}
	args, err := deploywire.DeployArgs{BundleHash: hash, Name: "pilotnet", Version: 2, Role: "primary", ForceQuarantined: true}.Args()
	if err != nil {
		t.Fatal(err)
	}
	ld = startLoad(t, c, r.cfg.Watchdog.Deadline)
	resp, corr := r.send(r.priv, command.ModelDeploy, args)
	if !resp.OK {
		t.Fatalf("model-deploy with force_quarantined: %+v", resp)
	}
	waitFor(t, 25*time.Second, "the forced deployment's outcome", func() (bool, string) {
		s, _ = roleStatus(fetchStatus(t, c), "primary")
		return s.ID == corr && !s.Running, fmt.Sprintf("%+v", s)
	})
	ld.end()
	if s.State != "trial_failed" || s.Trial.Compared == 0 {
		t.Fatalf("forced deployment: %+v", s)
	}
}

// TestModelRollbackCommand: model-rollback of a deployment still in trial
// aborts it (the candidate discarded, not quarantined); of a bundle
// neither deploying nor active it answers ok and changes nothing; with bad
// arguments it is bad_args. model-rollback is unsafe while moving, so the
// supervisor says the vehicle is parked first.
func TestModelRollbackCommand(t *testing.T) {
	r := newDeployRig(t, func(c *Config) {
		for k, v := range map[string]string{"trial_min_duration": "30s", "timeout_trial": "60s"} {
			if err := c.Deployments.Lifecycle.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
	})
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, hash, 2, false); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	waitFor(t, 20*time.Second, "the trial", func() (bool, string) {
		s, _ := roleStatus(fetchStatus(t, c), "primary")
		return s.State == "trial", s.State
	})
	ld.end()
	other := strings.Repeat("ab", 32)
	resp, _ := r.send(r.priv, command.ModelRollback, map[string]string{"bundle": other, "role": "primary"})
	if !resp.OK || !strings.Contains(string(resp.Result), "nothing to roll back") {
		t.Fatalf("model-rollback of another bundle: %+v", resp)
	}
	if s, _ := roleStatus(fetchStatus(t, c), "primary"); s.State != "trial" {
		t.Fatalf("another bundle's rollback changed the deployment: %+v", s)
	}
	resp, _ = r.send(r.priv, command.ModelRollback, map[string]string{"bundle": hash})
	if resp.OK || resp.Code != command.CodeBadArgs {
		t.Fatalf("model-rollback without a role: %+v", resp)
	}
	resp, _ = r.send(r.priv, command.ModelRollback, map[string]string{"bundle": hash, "role": "primary", "reason": "operator"})
	if !resp.OK || !strings.Contains(string(resp.Result), "aborted") {
		t.Fatalf("model-rollback in trial: %+v", resp)
	}
	s := waitDeployment(t, c, hash)
	if s.State != "aborted" || s.Quarantine != "" {
		t.Fatalf("deployment: %+v", s)
	}
	r.waitReport(t, hash, deploywire.Aborted)
	tb := d.models.store.Table()
	if rs := tb.Roles[slot.Primary]; len(tb.Quarantine) != 0 || (rs != nil && (rs.Candidate != nil || rs.Active != nil)) {
		t.Fatalf("slot table after the abort: %+v", tb)
	}
}

// TestDeploymentsOffWhenSlotsUnavailable: a slot store that cannot be
// opened leaves the daemon serving its configured models, with
// deployments off, a warning, and status saying why.
func TestDeploymentsOffWhenSlotsUnavailable(t *testing.T) {
	cfg := daemonConfig(t)
	notDir := filepath.Join(t.TempDir(), "slots")
	if err := os.WriteFile(notDir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Deployments.SlotDir = notDir
	d, c := startDaemon(t, cfg)
	st := fetchStatus(t, c)
	if st.Deployments.State != "off" || !strings.Contains(st.Deployments.Why, notDir) || d.models != nil {
		t.Fatalf("deployments: %+v", st.Deployments)
	}
	if !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "model deployments off") }) {
		t.Fatalf("warnings: %v", st.Warnings)
	}
	if p := servedModel(d); p != cfg.ModelPath(cfg.Models.Primary.Path) {
		t.Fatalf("primary serves %s", p)
	}
	if resp := infer(t, c, time.Second); !resp.OK() {
		t.Fatalf("infer: %+v", resp)
	}
	validateStatus(t, statusSchema(t), mustJSON(t, st))
}
