package rollout

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// TestEncodeDecode: a rollout in the middle of a wave, with a log and
// attempts, reads back the same, and goes on the same.
func TestEncodeDecode(t *testing.T) {
	r := runScenario(t, `
		spec n=10 waves=10,50,100% max=50% min=2
		plan deploy v01
		report v01 committed
		plan deploy v02-v05
		ack v02 ok
		report v03 trial
		ack v04 none
		`)
	raw, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.Encode()
	if !bytes.Equal(raw, again) {
		t.Fatalf("the stored form changed on the way back:\n%s\n%s", raw, again)
	}
	if v := back.Vehicle("v04"); v == nil || v.Deploy.N != 1 || v.Outcome != Sent {
		t.Errorf("v04 after decoding: %+v", v)
	}
	// Both go on the same way.
	now := t0.Add(2 * time.Minute)
	a, b := r.Plan(now), back.Plan(now)
	// v04 (no answer) and v05 (nothing yet) are sent again.
	if len(a) != 2 || len(b) != 2 || a[0].CorrelationID != b[0].CorrelationID || a[0].CorrelationID != "r1:v04:deploy-2" ||
		a[1].CorrelationID != b[1].CorrelationID || a[1].CorrelationID != "r1:v05:deploy-2" {
		t.Errorf("plans differ: %+v %+v", a, b)
	}
}

// TestDecodeRefusals: a damaged or foreign file is refused with
// ErrCorrupt, naming what is wrong.
func TestDecodeRefusals(t *testing.T) {
	r := runScenario(t, "spec n=4 waves=50,100% max=50% min=1\nplan deploy v01 v02")
	raw, _ := r.Encode()
	for _, c := range []struct{ name, old, new, text string }{
		{"not JSON", `{`, `[`, "invalid character"},
		{"unknown member", `"status":`, `"colour":"red","status":`, "unknown field"},
		{"other version", `"v": 1`, `"v": 2`, "version 2"},
		{"bad status", `"status": "running"`, `"status": "sleeping"`, `status "sleeping"`},
		{"bad outcome", `"outcome": "sent"`, `"outcome": "lost"`, `outcome "lost"`},
		{"bad spec", `"role": "primary"`, `"role": "backup"`, "role"},
		{"vehicle out of plan", `"id": "v02"`, `"id": "v09"`, "vehicle #2"},
		{"current past the waves", `"current": 1`, `"current": 7`, "current wave 7 of 2"},
		{"waves not the plan", `"percent": 5000`, `"percent": 4000`, "wave 1 is not the one the spec plans"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := strings.Replace(string(raw), c.old, c.new, 1)
			if bad == string(raw) {
				t.Fatalf("%q is not in the encoding", c.old)
			}
			got, err := Decode([]byte(bad))
			if got != nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("Decode: %v, %v; want ErrCorrupt saying %q", got, err, c.text)
			}
		})
	}
	if _, err := Decode(append(raw, []byte(`{}`)...)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("trailing data: %v", err)
	}
}

// TestObserveIgnores: reports that are not this rollout's news change
// nothing.
func TestObserveIgnores(t *testing.T) {
	r := runScenario(t, "spec n=4 waves=50,100% max=50% min=1\nplan deploy v01 v02\nreport v01 trial")
	before, _ := r.Encode()
	v := r.Vehicle("v01")
	own := deploywire.Report{Vehicle: "v01", BundleHash: testHash, Role: "primary", State: deploywire.Committed,
		Deployment: CorrelationID("r1", "v01", "model-deploy", 1), Updated: v.Updated.Add(time.Second)}
	for name, edit := range map[string]func(*deploywire.Report){
		"another bundle":      func(p *deploywire.Report) { p.BundleHash = strings.Repeat("ab", 32) },
		"another role":        func(p *deploywire.Report) { p.Role = "shadow" },
		"another vehicle":     func(p *deploywire.Report) { p.Vehicle = "v99" },
		"an older report":     func(p *deploywire.Report) { p.Updated = v.Updated.Add(-time.Second) },
		"the same report":     func(p *deploywire.Report) { p.State, p.Updated = v.State, v.Updated },
		"an unsent envelope":  func(p *deploywire.Report) { p.State, p.Deployment = deploywire.Trial, "r1:v01:deploy-2" },
		"another rollout":     func(p *deploywire.Report) { p.State, p.Deployment = deploywire.FailedState, "r2:v01:deploy-1" },
		"a malformed id":      func(p *deploywire.Report) { p.State, p.Deployment = deploywire.FailedState, "r1:v01:deploy-01" },
		"an invalid state":    func(p *deploywire.Report) { p.State = "installed" },
		"an unstarted report": func(p *deploywire.Report) { p.Vehicle, p.State, p.Deployment = "v03", deploywire.Trial, "" },
	} {
		rep := own
		edit(&rep)
		if r.Observe(t0.Add(time.Minute), rep) {
			t.Errorf("%s: counted", name)
		}
	}
	if after, _ := r.Encode(); !bytes.Equal(before, after) {
		t.Errorf("ignored reports changed the rollout")
	}
	if !r.Observe(t0.Add(time.Minute), own) || r.Vehicle("v01").Outcome != Committed {
		t.Error("the rollout's own report was not counted")
	}
}

// TestAcknowledgeIgnores: answers to envelopes the rollout did not send
// change nothing.
func TestAcknowledgeIgnores(t *testing.T) {
	r := runScenario(t, "spec n=4 waves=50,100% max=50% min=1\nplan deploy v01 v02")
	before, _ := r.Encode()
	for _, c := range []struct{ vehicle, cid string }{
		{"v01", "r1:v01:deploy-2"},
		{"v01", "r1:v02:deploy-1"},
		{"v03", "r1:v03:deploy-1"},
		{"v09", "r1:v09:deploy-1"},
		{"v01", "r1:v01:rollback-1"},
		{"v01", "other"},
	} {
		if r.Acknowledge(t0, c.vehicle, c.cid, Ack{Code: "rejected"}) {
			t.Errorf("%s %s: counted", c.vehicle, c.cid)
		}
	}
	if after, _ := r.Encode(); !bytes.Equal(before, after) {
		t.Errorf("ignored answers changed the rollout")
	}
}

func TestCorrelationID(t *testing.T) {
	if got := CorrelationID("r-1", "veh.7", deploywire.Deploy, 3); got != "r-1:veh.7:deploy-3" {
		t.Error(got)
	}
	if got := CorrelationID("r-1", "veh.7", deploywire.Rollback, 1); got != "r-1:veh.7:rollback-1" {
		t.Error(got)
	}
}
