package deploywire

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/sync/command"
)

const hash = "4f2c1a0b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180706f5e4d3c2b1a090"

var at = time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)

func goodReport() Report {
	return Report{Vehicle: "veh-1", BundleHash: hash, Role: "primary", State: Trial, Deployment: "r1:veh-1:deploy-1", Updated: at}
}

// TestReportWire pins the JSON form docs/models.md shows and checks it
// reads back.
func TestReportWire(t *testing.T) {
	r := goodReport()
	r.State, r.Reason = FailedState, "trial: 3 of 200 outputs beyond the tolerance"
	raw, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"vehicle":"veh-1","bundle_hash":"` + hash + `","role":"primary","state":"failed","reason":"trial: 3 of 200 outputs beyond the tolerance","deployment":"r1:veh-1:deploy-1","updated_ms":1796457600000}`
	if string(raw) != want {
		t.Errorf("encoding\n%s\nwant\n%s", raw, want)
	}
	back, err := DecodeReport(raw)
	if err != nil || back != r {
		t.Errorf("read back %+v, %v", back, err)
	}
	// Unknown members are ignored (a later version may add some).
	if _, err := DecodeReport([]byte(strings.Replace(want, `"v":1,`, `"v":1,"progress":0.5,`, 1))); err != nil {
		t.Errorf("unknown member: %v", err)
	}
}

func TestReportRefusals(t *testing.T) {
	for _, c := range []struct {
		name, text string
		edit       func(*Report)
	}{
		{"bad vehicle", "vehicle", func(r *Report) { r.Vehicle = "veh/1" }},
		{"vehicle all", "vehicle", func(r *Report) { r.Vehicle = "all" }},
		{"short hash", "bundle_hash", func(r *Report) { r.BundleHash = hash[:10] }},
		{"upper-case hash", "bundle_hash", func(r *Report) { r.BundleHash = strings.ToUpper(hash) }},
		{"bad role", "role", func(r *Report) { r.Role = "backup" }},
		{"bad state", "state", func(r *Report) { r.State = "installed" }},
		{"long reason", "reason", func(r *Report) { r.Reason = strings.Repeat("x", MaxReason+1) }},
		{"reason not UTF-8", "reason", func(r *Report) { r.Reason = "\xff" }},
		{"long deployment", "deployment", func(r *Report) { r.Deployment = strings.Repeat("d", 257) }},
		{"no time", "updated", func(r *Report) { r.Updated = time.Time{} }},
	} {
		r := goodReport()
		c.edit(&r)
		if _, err := r.Encode(); !errors.Is(err, ErrBadReport) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: Encode: %v", c.name, err)
		}
	}
	good, _ := goodReport().Encode()
	for _, c := range []struct{ name, raw, text string }{
		{"not JSON", `{"v":1`, "unexpected end"},
		{"version 2", strings.Replace(string(good), `"v":1`, `"v":2`, 1), "version 2"},
		{"no version", strings.Replace(string(good), `"v":1,`, ``, 1), "version 0"},
		{"bad state", strings.Replace(string(good), `"trial"`, `"done"`, 1), "state"},
		{"no time", strings.Replace(string(good), `"updated_ms":1796457600000`, `"updated_ms":0`, 1), "updated"},
		{"too large", `{"v":1,"reason":"` + strings.Repeat("x", MaxReport) + `"}`, "bytes"},
	} {
		if _, err := DecodeReport([]byte(c.raw)); !errors.Is(err, ErrBadReport) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: DecodeReport: %v", c.name, err)
		}
	}
}

func TestStates(t *testing.T) {
	var failed, terminal []State
	for _, s := range States {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
		if s.Failed() {
			failed = append(failed, s)
		}
		if s.Terminal() {
			terminal = append(terminal, s)
		}
	}
	if !slices.Equal(failed, []State{RolledBack, TrialFailed, Refused, FailedState, TimedOut, Aborted, Replaced}) {
		t.Errorf("failed states %v", failed)
	}
	if !slices.Equal(terminal, []State{Committed, RolledBack, TrialFailed, Refused, FailedState, TimedOut, Aborted, Replaced}) {
		t.Errorf("terminal states %v", terminal)
	}
	if State("").Valid() || State("installed").Valid() {
		t.Error("an unknown state is valid")
	}
}

// TestRolesAreBundleRoles: the roles a report and the commands carry are
// the bundle's.
func TestRolesAreBundleRoles(t *testing.T) {
	var want []string
	for _, r := range bundle.Roles {
		want = append(want, string(r))
	}
	if !slices.Equal(Roles, want) {
		t.Errorf("Roles %v, models/bundle has %v", Roles, want)
	}
}

func TestTopics(t *testing.T) {
	if ReportTopic("veh-1") != "vigil/v1/veh-1/deploy" {
		t.Error(ReportTopic("veh-1"))
	}
	for topic, want := range map[string]string{
		"vigil/v1/veh-1/deploy": "veh-1", "vigil/v1/all/deploy": "", "vigil/v1/fleet/deploy": "",
		"vigil/v1/veh-1/deploy/x": "", "vigil/v2/veh-1/deploy": "", "vigil/v1/a/b/deploy": "",
	} {
		got, ok := VehicleFromReportTopic(topic)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v", topic, got, ok)
		}
	}
}

// TestCommands: the commands are known to the command channel, and
// model-deploy is safe while moving, model-rollback not.
func TestCommands(t *testing.T) {
	if !Deploy.Known() || !Rollback.Known() || Deploy != "model-deploy" || Rollback != "model-rollback" {
		t.Fatalf("%q %q", Deploy, Rollback)
	}
	if command.UnsafeWhileMoving(Deploy) || !command.UnsafeWhileMoving(Rollback) {
		t.Error("motion rules")
	}
}

func TestDeployArgs(t *testing.T) {
	a := DeployArgs{BundleHash: hash, Name: "pilotnet", Version: 3, Role: "primary", Rollout: "r1", ParkedOnly: true}
	m, err := a.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bundle": hash, "name": "pilotnet", "version": "3", "role": "primary", "rollout": "r1", "parked_only": "true"}
	if len(m) != len(want) {
		t.Errorf("args %v", m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("args[%s] = %q, want %q", k, m[k], v)
		}
	}
	back, err := ParseDeployArgs(m)
	if err != nil || back != a {
		t.Errorf("read back %+v, %v", back, err)
	}
	m["skip_trial"], m["parked_only"] = "true", "false"
	if back, err := ParseDeployArgs(m); err != nil || !back.SkipTrial || back.ParkedOnly || back.ForceQuarantined {
		t.Errorf("options: %+v %v", back, err)
	}
	a.ForceQuarantined = true
	if m, err = a.Args(); err != nil || m["force_quarantined"] != "true" {
		t.Fatalf("force_quarantined in the args: %v %v", m, err)
	}
	if back, err := ParseDeployArgs(m); err != nil || back != a {
		t.Errorf("read back with force_quarantined: %+v, %v", back, err)
	}
}

func TestDeployArgsRefusals(t *testing.T) {
	good := func() map[string]string {
		return map[string]string{"bundle": hash, "name": "pilotnet", "version": "3", "role": "primary"}
	}
	for _, c := range []struct {
		name, text string
		edit       func(map[string]string)
	}{
		{"no bundle", "bundle", func(m map[string]string) { delete(m, "bundle") }},
		{"bad bundle", "bundle", func(m map[string]string) { m["bundle"] = "xyz" }},
		{"no name", "name", func(m map[string]string) { delete(m, "name") }},
		{"bad name", "name", func(m map[string]string) { m["name"] = "-pilot" }},
		{"no version", "version", func(m map[string]string) { delete(m, "version") }},
		{"version 0", "version must be at least 1", func(m map[string]string) { m["version"] = "0" }},
		{"version not a number", "not a whole number", func(m map[string]string) { m["version"] = "v3" }},
		{"no role", "role", func(m map[string]string) { delete(m, "role") }},
		{"bad role", "role", func(m map[string]string) { m["role"] = "backup" }},
		{"bad rollout", "rollout", func(m map[string]string) { m["rollout"] = "r 1" }},
		{"bad option", "parked_only", func(m map[string]string) { m["parked_only"] = "yes" }},
		{"bad force option", "force_quarantined", func(m map[string]string) { m["force_quarantined"] = "1x" }},
		{"unknown argument", "unknown argument force", func(m map[string]string) { m["force"] = "true" }},
	} {
		m := good()
		c.edit(m)
		if a, err := ParseDeployArgs(m); !errors.Is(err, ErrBadArgs) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %+v, %v", c.name, a, err)
		}
	}
	if _, err := (DeployArgs{BundleHash: hash, Name: "pilotnet", Role: "primary"}).Args(); !errors.Is(err, ErrBadArgs) {
		t.Errorf("Args of version 0: %v", err)
	}
}

func TestRollbackArgs(t *testing.T) {
	a := RollbackArgs{BundleHash: hash, Role: "shadow", Rollout: "r1", Reason: "rollout r1 aborted"}
	m, err := a.Args()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseRollbackArgs(m); err != nil || back != a {
		t.Errorf("read back %+v, %v", back, err)
	}
	for name, m := range map[string]map[string]string{
		"no bundle":   {"role": "primary"},
		"no role":     {"bundle": hash},
		"long reason": {"bundle": hash, "role": "primary", "reason": strings.Repeat("r", MaxReason+1)},
		"unknown arg": {"bundle": hash, "role": "primary", "version": "2"},
	} {
		if _, err := ParseRollbackArgs(m); !errors.Is(err, ErrBadArgs) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
