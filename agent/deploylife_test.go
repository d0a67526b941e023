package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// deployGood deploys primary-v2 as pilotnet v2 under a 30 Hz stream and
// checks that it committed with no missed deadline.
func deployGood(t *testing.T, r *deployRig, d *Daemon, c *client.Client) string {
	t.Helper()
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	before := fetchStatus(t, c).Counters
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	resp, corr := r.deploy(t, hash, 2, false)
	if !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	s := waitDeployment(t, c, hash)
	ld.end()
	if s.State != "committed" || !s.Trial.Passed || s.Trial.Compared < 5 || !s.Gate.Passed || s.ID != corr {
		t.Fatalf("deployment: %+v", s)
	}
	rep := r.waitReport(t, hash, deploywire.Committed)
	if rep.Deployment != corr || rep.Vehicle != r.vehicle {
		t.Fatalf("report: %+v", rep)
	}
	st := fetchStatus(t, c)
	if st.Deployments.Floors["pilotnet"] != 2 {
		t.Fatalf("floors: %+v", st.Deployments)
	}
	// Timing promises are checked without the race detector (race_test.go).
	if missed := st.Counters.DeadlineMisses - before.DeadlineMisses; (missed != 0 || ld.missed.Load() != 0) && !raceEnabled {
		t.Fatalf("missed deadlines during the deployment: router %d, client %d of %d", missed, ld.missed.Load(), ld.sent.Load())
	}
	if ld.sent.Load() < 60 {
		t.Fatalf("only %d requests in the stream", ld.sent.Load())
	}
	rs, err := d.models.store.Slots(slot.Primary)
	if err != nil || rs.Active == nil || rs.Active.Model.Hash != hash || rs.Active.State != slot.Committed {
		t.Fatalf("slots: %v %+v", err, rs)
	}
	if p := servedModel(d); !strings.Contains(p, filepath.Join("primary", "slot-")) {
		t.Fatalf("primary serves %s, not the slot's model", p)
	}
	validateStatus(t, statusSchema(t), mustJSON(t, st))
	return hash
}

// TestModelDeployGoodBundle: a signed model-deploy of a good bundle
// (primary-v2) through the real command link is downloaded from the
// fleet's bundle server, verified, staged, trialled, promoted and
// committed while a 30 Hz request stream misses no deadline; the status
// and the retained deploy report say committed, the slot table has it
// active and its floor raised, and the rung serves the new model.
func TestModelDeployGoodBundle(t *testing.T) {
	r := newDeployRig(t, nil)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	deployGood(t, r, d, c)
}

// TestModelDeploySlowRolledBack: after a good version committed, a slow
// one (primary-slow) deployed with skip_trial is promoted; the watchdog
// fails it under load, and the health gate rolls it back to the good
// version, quarantining it.
func TestModelDeploySlowRolledBack(t *testing.T) {
	r := newDeployRig(t, nil)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	good := deployGood(t, r, d, c)
	goodPath := servedModel(d)

	slow := r.pack(t, demo.PrimarySlow, 3, r.modelPriv)
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, slow, 3, true); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	s := waitDeployment(t, c, slow)
	ld.end()
	if s.State != "rolled_back" || s.Trial.Compared != 0 || !strings.Contains(s.Quarantine, "watchdog") {
		t.Fatalf("deployment: %+v", s)
	}
	r.waitReport(t, slow, deploywire.RolledBack)
	rs, err := d.models.store.Slots(slot.Primary)
	if err != nil || rs.Active == nil || rs.Active.Model.Hash != good {
		t.Fatalf("slots after the rollback: %v %+v", err, rs)
	}
	if p := servedModel(d); p != goodPath {
		t.Fatalf("primary serves %s, not the good version's %s", p, goodPath)
	}
	if !slices.ContainsFunc(d.models.store.Table().Quarantine, func(q slot.Quarantined) bool { return q.Hash == slow }) {
		t.Fatal("the slow version is not quarantined")
	}
	if ld.missed.Load() != 0 && !raceEnabled {
		t.Fatalf("slow rollout: %d of %d requests not answered OK by their deadline", ld.missed.Load(), ld.sent.Load())
	}
}

// TestModelDeploySlowFirstRolledBack: a slow version deployed with
// skip_trial as the role's first deployment has no previous slot to go
// back to: the health gate's rollback leaves the role without a slot, the
// configured factory model serves again, and the version is quarantined;
// after a restart the factory model is still the one loaded.
func TestModelDeploySlowFirstRolledBack(t *testing.T) {
	r := newDeployRig(t, nil)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	factory := servedModel(d)
	slow := r.pack(t, demo.PrimarySlow, 2, r.modelPriv)
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, slow, 2, true); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	s := waitDeployment(t, c, slow)
	ld.end()
	if s.State != "rolled_back" || !strings.Contains(s.Quarantine, "watchdog") {
		t.Fatalf("deployment: %+v", s)
	}
	r.waitReport(t, slow, deploywire.RolledBack)
	if rs, err := d.models.store.Slots(slot.Primary); err != nil || rs.Active != nil || rs.Previous != nil {
		t.Fatalf("slots after the rollback: %v %+v", err, rs)
	}
	if p := servedModel(d); p != factory {
		t.Fatalf("primary serves %s, not the factory model %s", p, factory)
	}
	if !slices.ContainsFunc(d.models.store.Table().Quarantine, func(q slot.Quarantined) bool { return q.Hash == slow }) {
		t.Fatal("the slow version is not quarantined")
	}
	if ld.missed.Load() != 0 && !raceEnabled {
		t.Fatalf("%d of %d requests not answered OK by their deadline", ld.missed.Load(), ld.sent.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.Close()
	d2, _ := startDaemon(t, r.cfg)
	if p := servedModel(d2); p != factory {
		t.Fatalf("after a restart the primary loads %s, not the factory model %s", p, factory)
	}
}

// TestModelDeployResumesAfterRestart: a daemon closed while its
// deployment is in trial resumes it from the saved state when it starts
// again (the trial starts over) and the deployment commits.
func TestModelDeployResumesAfterRestart(t *testing.T) {
	r := newDeployRig(t, func(c *Config) {
		for k, v := range map[string]string{"trial_min_duration": "4s", "timeout_trial": "30s"} {
			if err := c.Deployments.Lifecycle.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
	})
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, hash, 2, false); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	waitFor(t, 20*time.Second, "the trial", func() (bool, string) {
		s, _ := roleStatus(fetchStatus(t, c), "primary")
		return s.State == "trial" && s.Trial.Compared > 0, s.State
	})
	ld.end()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.Close()

	d2, c2 := startDaemon(t, r.cfg)
	s, ok := roleStatus(fetchStatus(t, c2), "primary")
	if !ok || s.Hash != hash || !s.Running || s.State == "committed" {
		t.Fatalf("after the restart: %+v", s)
	}
	r.waitOnline(c2)
	ld2 := startLoad(t, c2, r.cfg.Watchdog.Deadline)
	s = waitDeployment(t, c2, hash)
	ld2.end()
	if s.State != "committed" {
		t.Fatalf("deployment after the restart: %+v", s)
	}
	r.waitReport(t, hash, deploywire.Committed)
	if p := servedModel(d2); !strings.Contains(p, filepath.Join("primary", "slot-")) {
		t.Fatalf("primary serves %s after the restart", p)
	}
	// A clean close is no crash.
	if saved, err := os.ReadFile(filepath.Join(r.cfg.SlotDir(), "deploy-primary.json")); err != nil || strings.Contains(string(saved), "crashes") {
		t.Fatalf("saved state: %v %s", err, saved)
	}
}

// TestModelRollbackCommitted: model-rollback of a committed version
// outside any deployment makes the previous slot active again, swaps its
// model in and quarantines the version; with no previous slot (the role's
// first deployment) the role leaves its slots and the configured factory
// model serves again, under load without a missed deadline.
func TestModelRollbackCommitted(t *testing.T) {
	r := newDeployRig(t, nil)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	factory := servedModel(d)
	v2 := deployGood(t, r, d, c)
	v2Path := servedModel(d)

	v3 := r.pack(t, demo.PrimaryV2, 3, r.modelPriv)
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, v3, 3, false); !resp.OK {
		t.Fatalf("model-deploy v3: %+v", resp)
	}
	if s := waitDeployment(t, c, v3); s.State != "committed" {
		t.Fatalf("v3: %+v", s)
	}
	if p := servedModel(d); p == v2Path {
		t.Fatal("v3 committed but v2 serves")
	}
	resp, _ := r.send(r.priv, command.ModelRollback, map[string]string{"bundle": v3, "role": "primary", "reason": "operator"})
	if !resp.OK || !strings.Contains(string(resp.Result), "rolled back") {
		t.Fatalf("model-rollback of the committed v3: %+v", resp)
	}
	rs, err := d.models.store.Slots(slot.Primary)
	if err != nil || rs.Active == nil || rs.Active.Model.Hash != v2 {
		t.Fatalf("slots: %v %+v", err, rs)
	}
	if p := servedModel(d); p != v2Path {
		t.Fatalf("primary serves %s, not v2's %s", p, v2Path)
	}
	if !slices.ContainsFunc(d.models.store.Table().Quarantine, func(q slot.Quarantined) bool { return q.Hash == v3 && q.Reason == "operator" }) {
		t.Fatalf("v3 not quarantined: %+v", d.models.store.Table().Quarantine)
	}

	// v2 is active with no previous slot now: its rollback goes back to
	// the factory model.
	resp, _ = r.send(r.priv, command.ModelRollback, map[string]string{"bundle": v2, "role": "primary", "reason": "back to factory"})
	ld.end()
	if !resp.OK || !strings.Contains(string(resp.Result), "rolled back") {
		t.Fatalf("model-rollback of v2, the first deployment: %+v", resp)
	}
	if rs, err := d.models.store.Slots(slot.Primary); err != nil || rs.Active != nil {
		t.Fatalf("slots after going back to the factory model: %v %+v", err, rs)
	}
	if p := servedModel(d); p != factory {
		t.Fatalf("primary serves %s, not the factory model %s", p, factory)
	}
	if !slices.ContainsFunc(d.models.store.Table().Quarantine, func(q slot.Quarantined) bool { return q.Hash == v2 && q.Reason == "back to factory" }) {
		t.Fatalf("v2 not quarantined: %+v", d.models.store.Table().Quarantine)
	}
	if ld.missed.Load() != 0 && !raceEnabled {
		t.Fatalf("%d of %d requests missed their deadline", ld.missed.Load(), ld.sent.Load())
	}
}

// TestModelDeployNewerReplaces: a model-deploy for a role whose
// deployment is still in trial replaces it (replaced, its candidate
// discarded), and the newer one runs to its commit.
func TestModelDeployNewerReplaces(t *testing.T) {
	r := newDeployRig(t, func(c *Config) {
		if err := c.Deployments.Lifecycle.Set("timeout_trial", "60s"); err != nil {
			t.Fatal(err)
		}
	})
	old := r.pack(t, demo.PrimaryBad, 2, r.modelPriv)
	newer := r.pack(t, demo.PrimaryV2, 3, r.modelPriv)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	// The bad candidate keeps its trial going: with no requests it gets
	// no samples and waits in trial.
	if resp, _ := r.deploy(t, old, 2, false); !resp.OK {
		t.Fatalf("model-deploy v2: %+v", resp)
	}
	waitFor(t, 20*time.Second, "the trial", func() (bool, string) {
		s, _ := roleStatus(fetchStatus(t, c), "primary")
		return s.State == "trial", s.State
	})
	if resp, _ := r.deploy(t, old, 2, false); resp.OK || !strings.Contains(resp.Message, "duplicate") {
		t.Fatalf("the same bundle again: %+v", resp)
	}
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, newer, 3, false); !resp.OK {
		t.Fatalf("model-deploy v3: %+v", resp)
	}
	r.waitReport(t, old, deploywire.Replaced)
	s := waitDeployment(t, c, newer)
	ld.end()
	if s.State != "committed" {
		t.Fatalf("the newer deployment: %+v", s)
	}
	if q := d.models.store.Table().Quarantine; len(q) != 0 {
		t.Fatalf("a replaced candidate was quarantined: %+v", q)
	}
}

// TestModelDeployParkedOnly: a parked-only deployment that passed its
// trial waits, held, while the vehicle drives, and promotes once the
// supervisor says it is parked.
func TestModelDeployParkedOnly(t *testing.T) {
	r := newDeployRig(t, nil)
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	factory := servedModel(d)
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Driving}); err != nil {
		t.Fatal(err)
	}
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	args, err := deploywire.DeployArgs{BundleHash: hash, Name: "pilotnet", Version: 2, Role: "primary", ParkedOnly: true}.Args()
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := r.send(r.priv, command.ModelDeploy, args); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	waitFor(t, 20*time.Second, "the promotion held", func() (bool, string) {
		s, _ := roleStatus(fetchStatus(t, c), "primary")
		return s.State == "promoting" && s.Held && s.ParkedOnly, fmt.Sprintf("%+v", s)
	})
	time.Sleep(1500 * time.Millisecond) // two looks at the motion: still driving
	if s, _ := roleStatus(fetchStatus(t, c), "primary"); s.State != "promoting" || servedModel(d) != factory {
		t.Fatalf("promoted while driving: %+v", s)
	}
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	s := waitDeployment(t, c, hash)
	ld.end()
	if s.State != "committed" || servedModel(d) == factory {
		t.Fatalf("after parking: %+v, serving %s", s, servedModel(d))
	}
}

// TestModelDeployKilledMidTrial: vigild killed with SIGKILL while its
// deployment is in trial resumes it from the saved state at its next start
// (the crash counted, the trial started over) and commits it.
func TestModelDeployKilledMidTrial(t *testing.T) {
	r := newDeployRig(t, func(c *Config) {
		for k, v := range map[string]string{"trial_min_duration": "4s", "timeout_trial": "30s"} {
			if err := c.Deployments.Lifecycle.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
	})
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	ch := startChild(t, r.cfg, io.Discard)
	r.waitOnline(ch.c)
	ld := startLoad(t, ch.c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, hash, 2, false); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	waitFor(t, 20*time.Second, "the trial", func() (bool, string) {
		s, _ := roleStatus(ch.status(), "primary")
		return s.State == "trial" && s.Trial.Compared > 0, s.State
	})
	ld.end()
	ch.kill()

	ch2 := startChild(t, r.cfg, io.Discard)
	// The socket serves before the last start step resumes the deployment.
	waitFor(t, 10*time.Second, "the deployment resumed", func() (bool, string) {
		s, ok := roleStatus(ch2.status(), "primary")
		return ok && s.Hash == hash && (s.Running || s.State == "committed"), fmt.Sprintf("%+v", s)
	})
	r.waitOnline(ch2.c)
	ld2 := startLoad(t, ch2.c, r.cfg.Watchdog.Deadline)
	var s status.DeploymentStatus
	waitFor(t, 25*time.Second, "the deployment's outcome", func() (bool, string) {
		s, _ = roleStatus(ch2.status(), "primary")
		return !s.Running, fmt.Sprintf("%+v", s)
	})
	ld2.end()
	if s.State != "committed" {
		t.Fatalf("deployment after the kill: %+v", s)
	}
	r.waitReport(t, hash, deploywire.Committed)
	saved, err := os.ReadFile(filepath.Join(r.cfg.SlotDir(), "deploy-primary.json"))
	if err != nil || !strings.Contains(string(saved), `"crashes": 1`) {
		t.Fatalf("saved state: %v %q", err, saved)
	}
	ch2.stop()
}
