package agent

import (
	"context"
	"crypto/ed25519"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/models/slot"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// TestModelDeployEnvelopeRefusals: a signed model-deploy that expired, or
// that names another vehicle (published on this vehicle's topic), is
// rejected with its reason and starts no deployment (nothing staged); a
// valid one starts its deployment, and the same envelope replayed is
// rejected as replayed and starts no second one.
func TestModelDeployEnvelopeRefusals(t *testing.T) {
	r := newDeployRig(t, nil)
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	_, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	args, err := deploywire.DeployArgs{BundleHash: hash, Name: "pilotnet", Version: 2, Role: "primary"}.Args()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(target string, issued time.Time) ([]byte, string) {
		env := command.Envelope{Target: target, Command: command.ModelDeploy, Args: args,
			KeyID: command.KeyIDOf(r.priv.Public().(ed25519.PublicKey))}
		env.Nonce, _ = command.NewNonce(nil)
		env.IssuedAt = issued.Truncate(time.Millisecond)
		env.Expires = env.IssuedAt.Add(time.Minute)
		env.CorrelationID = cmdlink.NewCorrelationID()
		signed, err := command.Sign(env, r.priv)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := signed.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return raw, env.CorrelationID
	}
	sendRaw := func(what string, raw []byte, id string) command.Response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := r.sender.SendRaw(ctx, cmdlink.CommandTopic(r.vehicle), raw, id, r.vehicle)
		if err != nil || len(res.Replies) != 1 {
			t.Fatalf("%s: %v, replies %+v", what, err, res)
		}
		return res.Replies[0].Response
	}
	noDeployment := func(what string) {
		t.Helper()
		if st := fetchStatus(t, c); len(st.Deployments.Roles) != 0 {
			t.Fatalf("%s started a deployment: %+v", what, st.Deployments.Roles)
		}
		if entries, _ := os.ReadDir(r.cfg.BundleStagingDir()); len(entries) > 0 {
			t.Fatalf("%s staged something: %v", what, entries)
		}
	}

	raw, id := sign(r.vehicle, time.Now().Add(-2*time.Minute))
	if resp := sendRaw("expired", raw, id); resp.OK || resp.Code != command.CodeRejected || !strings.Contains(resp.Message, string(cmdlink.ReasonExpired)) {
		t.Fatalf("expired model-deploy: %+v", resp)
	}
	noDeployment("an expired model-deploy")

	raw, id = sign("another-vehicle", time.Now())
	if resp := sendRaw("another vehicle's", raw, id); resp.OK || resp.Code != command.CodeRejected || !strings.Contains(resp.Message, string(cmdlink.ReasonWrongTarget)) {
		t.Fatalf("model-deploy for another vehicle: %+v", resp)
	}
	noDeployment("a model-deploy for another vehicle")

	raw, id = sign(r.vehicle, time.Now())
	if resp := sendRaw("first", raw, id); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	first, ok := roleStatus(fetchStatus(t, c), "primary")
	if !ok || first.Hash != hash {
		t.Fatalf("no deployment after model-deploy: %+v", fetchStatus(t, c).Deployments)
	}
	if resp := sendRaw("replay", raw, id); resp.OK || resp.Code != command.CodeRejected || !strings.Contains(resp.Message, string(cmdlink.ReasonReplayed)) {
		t.Fatalf("replayed model-deploy: %+v", resp)
	}
	if s, _ := roleStatus(fetchStatus(t, c), "primary"); s.ID != first.ID || s.Started != first.Started {
		t.Fatalf("the replay started another deployment: %+v, first %+v", s, first)
	}
}

// TestModelDeployPromotedHangs: a version promoted without a trial (the
// role's first deployment) hangs in its health gate (a drill fault): the
// watchdog fails it, the gate rolls it back, the version is quarantined,
// the slot table names no version for the role and the factory model
// serves again, with no request missing its deadline (the shadow covers).
func TestModelDeployPromotedHangs(t *testing.T) {
	r := newDeployRig(t, func(c *Config) {
		c.Drills.Allowed = true
		if err := c.Deployments.Lifecycle.Set("gate_duration", "8s"); err != nil {
			t.Fatal(err)
		}
	})
	hash := r.pack(t, demo.PrimaryV2, 2, r.modelPriv)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	factory := servedModel(d)
	ld := startLoad(t, c, r.cfg.Watchdog.Deadline)
	if resp, _ := r.deploy(t, hash, 2, true); !resp.OK {
		t.Fatalf("model-deploy: %+v", resp)
	}
	waitFor(t, 20*time.Second, "the promotion", func() (bool, string) {
		s, _ := roleStatus(fetchStatus(t, c), "primary")
		return s.State == "promoted", s.State
	})
	if err := control(t, c, client.ControlRequest{Op: client.OpDrillFault, Backend: client.Primary, FaultKind: "hang"}); err != nil {
		t.Fatal(err)
	}
	s := waitDeployment(t, c, hash)
	ld.end()
	if s.State != "rolled_back" || !strings.Contains(s.Quarantine, "watchdog") {
		t.Fatalf("deployment: %+v", s)
	}
	r.waitReport(t, hash, deploywire.RolledBack)
	if rs, err := d.models.store.Slots(slot.Primary); err != nil || rs.Active != nil {
		t.Fatalf("slots after the rollback: %v %+v", err, rs)
	}
	if p := servedModel(d); p != factory {
		t.Fatalf("primary serves %s, not the factory model %s", p, factory)
	}
	if !slices.ContainsFunc(d.models.store.Table().Quarantine, func(q slot.Quarantined) bool { return q.Hash == hash }) {
		t.Fatal("the hanging version is not quarantined")
	}
	if ld.missed.Load() != 0 && !raceEnabled {
		t.Fatalf("%d of %d requests not answered OK by their deadline", ld.missed.Load(), ld.sent.Load())
	}
}
