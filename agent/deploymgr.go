package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/deploy"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/sync/bundlelink"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// pendingReport is a deploy report not yet on the broker.
type pendingReport struct {
	role slot.Role
	rep  deploywire.Report
}

// reportRetry is how soon a report the link did not take is sent again.
const reportRetry = 2 * time.Second

// maxReports bounds the reports waiting for the link; past it the oldest
// are dropped (the broker keeps only the latest retained anyway).
const maxReports = 64

// contracts reads the contract of the model each rung runs (its active
// slot's, or the configured file), which a bundle must match.
func (m *deployer) readContracts() map[bundle.Role]bundle.Contract {
	out := map[bundle.Role]bundle.Contract{}
	for _, r := range slot.Roles {
		b, err := os.ReadFile(m.d.cfg.ModelPath(m.d.cfg.Models.backend(roleBackend(r)).Path))
		if err != nil {
			continue
		}
		if c, err := bundle.ContractFromONNX(b); err == nil {
			out[bundle.Role(r)] = c
		}
	}
	return out
}

// providers are the execution providers of the loaded rungs, as bundles
// name them ("cpu", "cuda", "tensorrt").
func (m *deployer) readProviders() []string {
	out := []string{"cpu"}
	for _, be := range m.d.backends {
		if be == nil {
			continue
		}
		p, _, _ := strings.Cut(be.Info().Provider, ":")
		if p != "" && !contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// policy is what the vehicle holds a bundle to now.
func (m *deployer) policy() bundle.Policy {
	return bundle.Policy{Trusted: m.keys, VigilVersion: Version, Providers: m.providers,
		Contracts: m.contracts, Floors: m.store.Table().Floors}
}

// preflight judges a manifest before its first chunk moves.
func (m *deployer) preflight(mf *bundle.Manifest) error {
	return bundlelink.CheckPolicy(m.policy(), time.Now)(mf)
}

// fetchWith fetches hash and remembers where it was staged.
func (m *deployer) fetchWith(ctx context.Context, hash string) error {
	res, err := m.fetch.Fetch(ctx, hash)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.staged[hash] = res.Dir
	m.mu.Unlock()
	return nil
}

// stagedDir is where the staged bundle of hash is; after a restart the
// fetcher is asked again, which returns at once for a complete one.
func (m *deployer) stagedDir(hash string) (string, error) {
	m.mu.Lock()
	dir, ok := m.staged[hash]
	m.mu.Unlock()
	if ok {
		return dir, nil
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	select {
	case m.fetchSem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-m.fetchSem }()
	if err := m.fetchWith(ctx, hash); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.staged[hash], nil
}

// launch starts a deployment of spec, or offers it to the role's running
// one as newer; the error says why it was refused.
func (m *deployer) launch(ctx context.Context, spec deploy.Spec) error {
	role := slot.Role(spec.Role)
	for range 3 {
		m.mu.Lock()
		if m.ctx == nil {
			m.mu.Unlock()
			return errors.New("model deployments are still starting; send the command again")
		}
		v := m.drivers[role]
		if v == nil {
			dep, rd, err := deploy.New(m.cfg, spec, time.Now())
			if err != nil {
				m.mu.Unlock()
				return cmdlink.BadArgs("model-deploy: %v", err)
			}
			m.startLocked(role, dep, rd)
			m.mu.Unlock()
			return nil
		}
		m.mu.Unlock()
		err, ok := v.command(ctx, deploy.Newer{Spec: spec})
		if ok {
			return err
		}
	}
	return fmt.Errorf("the %s deployment under way did not answer; send the command again", role)
}

// command hands ev to the driver and returns the step's Rejected; ok is
// false when the driver ended first. When ctx ends first (the driver busy
// with a long action) it says so; the event may still be taken.
func (v *driver) command(ctx context.Context, ev deploy.Event) (error, bool) {
	reply := make(chan error, 1)
	select {
	case v.events <- driverEvent{ev: ev, reply: reply}:
	case <-v.done:
		return nil, false
	case <-ctx.Done():
		return fmt.Errorf("the %s deployment is busy with a step; send the command again: %w", v.role, ctx.Err()), true
	}
	select {
	case err := <-reply:
		return err, true
	case <-ctx.Done():
		return fmt.Errorf("the %s deployment did not answer in time; its status says whether it took the command: %w", v.role, ctx.Err()), true
	case <-v.done:
		select {
		case err := <-reply:
			return err, true
		default:
			return nil, false
		}
	}
}

// report records a transition: the log, the events stream, status, and
// the retained deploy report.
func (m *deployer) report(v *driver, t deploy.Transition) {
	spec := v.spec
	v.log().Info("deployment", zap.Stringer("from", t.From), zap.Stringer("to", t.To), zap.String("reason", t.Reason))
	m.d.tel.event(struct {
		Type       string `json:"type"`
		At         string `json:"at"`
		Role       string `json:"role"`
		Deployment string `json:"deployment,omitempty"`
		Bundle     string `json:"bundle"`
		Version    uint64 `json:"version"`
		Hash       string `json:"hash"`
		From       string `json:"from"`
		To         string `json:"to"`
		Reason     string `json:"reason"`
	}{"model_deploy", t.At.UTC().Format(time.RFC3339Nano), spec.Role, spec.ID, spec.Name, spec.Version, spec.Hash,
		t.From.String(), t.To.String(), t.Reason})
	reason := t.Reason
	if len(reason) > deploywire.MaxReason {
		reason = strings.ToValidUTF8(reason[:deploywire.MaxReason], "")
	}
	rep := deploywire.Report{Vehicle: m.d.cfg.VehicleID, BundleHash: spec.Hash, Role: spec.Role,
		State: deploywire.State(t.To.String()), Reason: reason, Deployment: spec.ID, Updated: t.At}
	m.mu.Lock()
	if len(m.reports) == maxReports {
		m.reports = m.reports[1:]
	}
	m.reports = append(m.reports, &pendingReport{role: v.role, rep: rep})
	m.mu.Unlock()
	select {
	case m.reportKick <- struct{}{}:
	default:
	}
}

// reporter publishes the deploy reports in order, retained, through the
// link, so that a fleet listening sees every change; one the link did not
// take is sent again after reportRetry, and those after it wait.
func (m *deployer) reporter() {
	defer m.wg.Done()
	retry := time.NewTimer(reportRetry)
	defer retry.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.reportKick:
		case <-retry.C:
		}
		retry.Reset(reportRetry)
		for m.ctx.Err() == nil {
			m.mu.Lock()
			if len(m.reports) == 0 {
				m.mu.Unlock()
				break
			}
			p := m.reports[0]
			m.mu.Unlock()
			err := m.publish(p.rep)
			m.mu.Lock()
			if err == nil && len(m.reports) > 0 && m.reports[0] == p {
				m.reports = m.reports[1:]
			}
			if st, ok := m.last[p.role]; ok && st.Hash == p.rep.BundleHash && st.State == string(p.rep.State) {
				st.Reported, st.ReportError = err == nil, ""
				if err != nil {
					st.ReportError = err.Error()
				}
				m.last[p.role] = st
			}
			m.mu.Unlock()
			if err != nil {
				break
			}
		}
	}
}

func (m *deployer) publish(r deploywire.Report) error {
	c := m.d.cloud
	if c == nil {
		return errors.New("sync is off: " + m.d.syncWhy)
	}
	b, err := r.Encode()
	if err != nil {
		return err
	}
	return c.up.Publish(deploywire.ReportTopic(m.d.cfg.VehicleID), b, true, 5*time.Second)
}

// record puts the deployment's status where Status reads it.
func (v *driver) record() {
	m := v.m
	m.mu.Lock()
	defer m.mu.Unlock()
	v.recordLocked()
}

// recordLocked is record with m.mu held.
func (v *driver) recordLocked() {
	s := v.dep.Status()
	out := status.DeploymentStatus{Role: string(v.role), ID: s.Spec.ID, State: s.State.String(), Running: !v.dep.Done(),
		Bundle: s.Spec.Name, Version: s.Spec.Version, Hash: s.Spec.Hash, Reason: s.Reason,
		Since: rfc3339(s.Since), Started: rfc3339(s.Started), Deadline: rfc3339(s.Deadline),
		ParkedOnly: s.Spec.ParkedOnly, SkipTrial: s.Spec.SkipTrial, Held: s.Held,
		DownloadBytes: s.Download.Have, BundleBytes: s.Download.Total,
		Trial: status.DeploymentTrialStatus{Compared: s.Trial.Compared, Divergent: s.Trial.Divergent, Slow: s.Trial.Slow,
			Errors: s.Trial.Errors, LastError: s.Trial.LastError, Passed: s.Trial.Passed},
		Gate:       status.DeploymentGateStatus{Requests: s.Gate.Requests, Suspects: s.Gate.Suspects, Passed: s.Gate.Passed},
		Quarantine: s.Quarantine}
	m := v.m
	if old, ok := m.last[v.role]; ok && old.Hash == out.Hash && old.State == out.State {
		out.Reported, out.ReportError = old.Reported, old.ReportError
	}
	m.last[v.role] = out
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// deploymentsStatus is the status document's section.
func (d *Daemon) deploymentsStatus() status.DeploymentsStatus {
	m := d.models
	if m == nil {
		return status.DeploymentsStatus{State: "off", Why: d.deployWhy, Roles: []status.DeploymentStatus{}}
	}
	out := status.DeploymentsStatus{State: "on", TrustedKeys: len(m.keys), Roles: []status.DeploymentStatus{}}
	if len(m.keys) == 0 {
		out.State, out.Why = "refusing", errNoModelKeys.Error()
	}
	t := m.store.Table()
	if len(t.Floors) > 0 {
		out.Floors = t.Floors
	}
	out.Quarantined = len(t.Quarantine)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range slot.Roles {
		if s, ok := m.last[r]; ok {
			out.Roles = append(out.Roles, s)
		}
	}
	return out
}

var errNoModelKeys = errors.New("no trusted model-signing keys (deployments.trusted_keys): every model-deploy is refused")

// executeModelDeploy starts a deployment from a verified model-deploy.
func (d *Daemon) executeModelDeploy(ctx context.Context, env command.Envelope, log *zap.Logger) (json.RawMessage, error) {
	a, err := deploywire.ParseDeployArgs(env.Args)
	if err != nil {
		return nil, cmdlink.BadArgs("%v", err)
	}
	m := d.models
	switch {
	case m == nil:
		return nil, fmt.Errorf("model deployments are off: %s", d.deployWhy)
	case len(m.keys) == 0:
		return nil, errNoModelKeys
	}
	if q, ok := m.store.Table().Quarantined(a.Name, a.Version, a.BundleHash); ok && !a.ForceQuarantined {
		return nil, fmt.Errorf("%s v%d (%.12s) is quarantined on this vehicle (%s): model-deploy with %s=true installs it anyway",
			a.Name, a.Version, a.BundleHash, q.Reason, deploywire.ArgForceQuarantined)
	}
	spec := deploy.Spec{ID: env.CorrelationID, Role: a.Role, Name: a.Name, Version: a.Version, Hash: a.BundleHash,
		Issued: env.IssuedAt, ParkedOnly: a.ParkedOnly, SkipTrial: a.SkipTrial,
		ForceQuarantined: a.ForceQuarantined}
	if err := m.launch(ctx, spec); err != nil {
		log.Warn("model-deploy refused", zap.Error(err))
		return nil, err
	}
	log.Info("model deployment started", zap.Stringer("spec", spec), zap.String("rollout", a.Rollout))
	return json.Marshal(map[string]string{"deployment": spec.String(), "state": "started"})
}

// executeModelRollback stops or rolls back the role's deployment of the
// bundle; a bundle neither deploying nor active there changes nothing.
func (d *Daemon) executeModelRollback(ctx context.Context, env command.Envelope, log *zap.Logger) (json.RawMessage, error) {
	a, err := deploywire.ParseRollbackArgs(env.Args)
	if err != nil {
		return nil, cmdlink.BadArgs("%v", err)
	}
	m := d.models
	if m == nil {
		return nil, fmt.Errorf("model deployments are off: %s", d.deployWhy)
	}
	reason := a.Reason
	if reason == "" {
		reason = "fleet command " + env.CorrelationID
	}
	role := slot.Role(a.Role)
	m.mu.Lock()
	v := m.drivers[role]
	m.mu.Unlock()
	done, taken := "nothing to roll back", false
	if v != nil && v.spec.Hash == a.BundleHash {
		rej, ok := v.command(ctx, deploy.Command{Op: deploy.CmdRollback, Reason: reason})
		done = "rolling back"
		if ok && errors.Is(rej, deploy.ErrNotPromoted) {
			rej, ok = v.command(ctx, deploy.Command{Op: deploy.CmdAbort, Reason: reason})
			done = "aborted"
		}
		if ok && rej != nil && !errors.Is(rej, deploy.ErrDone) {
			return nil, rej
		}
		// A deployment that ended before it took the command leaves its
		// version to the slot table, below.
		taken = ok && rej == nil
	}
	if !taken {
		done = "nothing to roll back"
		if pos := m.position(role, a.BundleHash); pos == deploy.SlotActive || pos == deploy.SlotCommitted {
			if err := m.rollbackActive(role, reason); err != nil {
				return nil, err
			}
			done = "rolled back"
		}
	}
	log.Info("model-rollback", zap.String("role", a.Role), zap.String("bundle", a.BundleHash), zap.String("done", done))
	return json.Marshal(map[string]string{"role": a.Role, "done": done})
}

// rollbackActive rolls role back from its active version, outside a
// deployment (a committed one): the previous slot becomes active (with
// none, the role leaves its slots and the configured model serves again),
// the version is quarantined, and the rung swaps the restored model in.
func (m *deployer) rollbackActive(role slot.Role, reason string) error {
	rs, err := m.store.Slots(role)
	if err != nil {
		return err
	}
	if m.d.swap == nil {
		return errNoSwap
	}
	if rs.Previous == nil {
		err = m.store.Vacate(role, reason)
	} else {
		err = m.store.Rollback(role, reason)
	}
	if err != nil {
		return err
	}
	b := roleBackend(role)
	path, ok := m.activeModel(role)
	if !ok {
		path = m.factory[b]
	}
	if err := m.d.swap.SwapModel(m.ctx, b, path); err != nil {
		return fmt.Errorf("the slot table rolled back, but the %s rung did not swap (%w): it serves the quarantined version until the next start", b, err)
	}
	m.d.tel.event(struct {
		Type   string `json:"type"`
		At     string `json:"at"`
		Role   string `json:"role"`
		Model  string `json:"model"`
		Reason string `json:"reason"`
	}{"model_rollback", time.Now().UTC().Format(time.RFC3339Nano), string(role), path, reason})
	m.d.log.Warn("model rolled back by command", zap.String("role", string(role)), zap.String("model", path), zap.String("reason", reason))
	return nil
}
