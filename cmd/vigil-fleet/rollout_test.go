package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/store"
)

// storedRollout stores a rollout of four vehicles, its first wave sent,
// in a new rollouts directory, and returns the directory.
func storedRollout(t *testing.T, id string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rollouts")
	d, err := store.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rollout.New(rollout.Spec{ID: id, Bundle: rollout.Bundle{Hash: strings.Repeat("ab", 32), Name: "pilotnet", Version: 2},
		Role: "primary", Vehicles: []string{"veh-1", "veh-2", "veh-3", "veh-4"}, Waves: []rollout.Percent{2500, rollout.Whole},
		MaxFailures: 2500, MinVehicles: 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r.Plan(time.Now())
	if err := d.Add(r); err != nil {
		t.Fatal(err)
	}
	return dir
}

// snapshot reads every file under dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			out[p], _ = os.ReadFile(p)
		}
		return nil
	})
	return out
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// TestRolloutControl: pause, resume and abort from other invocations
// change the stored rollout; each refused request changes nothing.
func TestRolloutControl(t *testing.T) {
	dir := storedRollout(t, "r1")
	rd := []string{"--rollouts-dir", dir}
	ctl := func(args ...string) (string, error) {
		out, _, err := fleet(t, append(append([]string{"rollout"}, args...), rd...)...)
		return out, err
	}
	refused := func(want string, args ...string) {
		t.Helper()
		before := snapshot(t, dir)
		out, err := ctl(args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q\n%s", args, err, want, out)
		}
		if !sameFiles(before, snapshot(t, dir)) {
			t.Errorf("%q changed the rollouts directory", args)
		}
	}
	out, err := ctl("pause", "r1")
	if err != nil || !strings.Contains(out, "rollout r1 paused") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	refused("not running: rollout r1 is paused", "pause", "r1")
	out, _ = ctl("status", "r1")
	if !strings.Contains(out, "— paused (no vigil-fleet runs it)") || !strings.Contains(out, "paused by the operator (rollout pause)") {
		t.Errorf("status after pause:\n%s", out)
	}
	out, err = ctl("resume", "r1")
	if err != nil || !strings.Contains(out, "rollout r1 resumed") || !strings.Contains(out, "rollout start --resume r1") {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	refused("not paused: rollout r1 is running", "resume", "r1")
	refused("no such rollout r9", "pause", "r9")
	refused("no such rollout r9", "status", "r9")
	refused("want one rollout id", "pause")
	refused("want one rollout id", "abort", "r1", "r2")
	refused("rollout id \"../r1\"", "pause", "../r1")
	// abort --rollback with no vigil-fleet running it must send the
	// rollbacks itself, so it needs a key; refused before it aborts.
	refused("--key is required", "abort", "--rollback", "--key", "", "r1")

	out, err = ctl("abort", "r1")
	if err != nil || !strings.Contains(out, "rollout r1 aborted") {
		t.Fatalf("abort: %v\n%s", err, out)
	}
	refused("aborted already", "abort", "r1")
	refused("not running: rollout r1 is aborted", "pause", "r1")

	// A runner's claim shows in status.
	d, _ := store.Open(dir)
	c, err := d.Claim("r1")
	if err != nil {
		t.Fatal(err)
	}
	out, _ = ctl("status", "r1")
	c.Release()
	if !strings.Contains(out, "(a vigil-fleet runs it)") {
		t.Errorf("status while claimed:\n%s", out)
	}
	out, _ = ctl("status")
	if !strings.Contains(out, "r1") || !strings.Contains(out, "aborted") {
		t.Errorf("status list:\n%s", out)
	}
}

// TestRolloutDirDefault: --sink puts the rollouts beside the sink, as the
// checkpoint store is; neither flag is an error.
func TestRolloutDirDefault(t *testing.T) {
	dir := storedRollout(t, "r1")
	sink := filepath.Join(filepath.Dir(dir), "sink")
	if out, _, err := fleet(t, "rollout", "status", "--sink", sink, "r1"); err != nil || !strings.Contains(out, "rollout r1:") {
		t.Errorf("status --sink: %v\n%s", err, out)
	}
	if _, _, err := fleet(t, "rollout", "status", "r1"); err == nil || !strings.Contains(err.Error(), "--rollouts-dir is required (or --sink") {
		t.Errorf("no directory: %v", err)
	}
	if _, _, err := fleet(t, "rollout", "status", "--rollouts-dir", filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "--rollouts-dir") {
		t.Errorf("missing directory: %v", err)
	}
}

// TestRolloutStartRefusals: each bad start is refused with the flag at
// fault, before any rollout is stored or any broker is dialled.
func TestRolloutStartRefusals(t *testing.T) {
	key := keygen(t)
	signed, _ := signedBundle(t, "2")
	unsigned := filepath.Join(t.TempDir(), "unsigned.tar")
	mustFleet(t, packArgs(modelFiles(t), unsigned)...)
	dir := filepath.Join(t.TempDir(), "rollouts")
	vfile := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(vfile, []byte("# nobody\n\n"), 0o644)
	stored := storedRollout(t, "old")
	// A broker that is not there: a refusal must come before dialling.
	base := func(extra ...string) []string {
		return append([]string{"rollout", "start", "--bundle", signed, "--vehicles", "veh-1,veh-2,veh-3", "--key", key + ".key",
			"--broker", "tcp://127.0.0.1:1", "--timeout", "1s", "--rollouts-dir", dir}, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no bundle", base("--bundle", ""), "--bundle is required"},
		{"missing bundle", base("--bundle", filepath.Join(dir, "none.tar")), "--bundle: bundle:"},
		{"unsigned bundle", base("--bundle", unsigned), "is not signed: sign it with `vigil-fleet model sign` first"},
		{"a role the bundle does not fill", base("--role", "degraded"), "not --role degraded"},
		{"unknown role", base("--role", "backup"), "not --role backup"},
		{"no vehicles", []string{"rollout", "start", "--bundle", signed, "--key", key + ".key", "--rollouts-dir", dir}, "give the vehicles with --vehicles"},
		{"both vehicle flags", base("--vehicles-file", vfile), "(one of them)"},
		{"empty vehicles file", []string{"rollout", "start", "--bundle", signed, "--vehicles-file", vfile, "--key", key + ".key", "--rollouts-dir", dir}, "lists no vehicle"},
		{"missing vehicles file", []string{"rollout", "start", "--bundle", signed, "--vehicles-file", vfile + ".none", "--key", key + ".key", "--rollouts-dir", dir}, "--vehicles-file"},
		{"bad vehicle", base("--vehicles", "veh-1,veh/2"), `--vehicles/--vehicles-file: #2 "veh/2" is not a vehicle id`},
		{"duplicate vehicle", base("--vehicles", "veh-1,veh-1"), `"veh-1" is listed twice`},
		{"bad waves", base("--waves", "1,ten,100%"), `--waves: "ten" is not a percentage`},
		{"falling waves", base("--waves", "50,10,100"), "--waves: wave 2 (10%) is not above wave 1 (50%)"},
		{"waves short of 100%", base("--waves", "10,50"), "--waves: the last wave is 50%"},
		{"bad max failures", base("--max-failures", "5 percent"), "--max-failures:"},
		{"max failures over 100%", base("--max-failures", "120%"), "--max-failures: \"120%\" is more than 100%"},
		{"min vehicles 0", base("--min-vehicles", "0"), "--min-vehicles: 0: want 1 to the number of vehicles (3)"},
		{"min vehicles above the fleet", base("--min-vehicles", "4"), "--min-vehicles: 4"},
		{"bad id", base("--id", "a b"), "--id:"},
		{"timeout under resend", base("--vehicle-timeout", "30s"), "--vehicle-timeout:"},
		{"no key", base("--key", ""), "--key is required"},
		{"missing key", base("--key", key+".none"), "--key:"},
		{"bad ack timeout", base("--ack-timeout", "0s"), "must be positive"},
		{"bad broker", base("--broker", "localhost"), "--broker"},
		{"arguments", base("extra"), "unexpected arguments"},
		{"no directory", []string{"rollout", "start", "--bundle", signed, "--vehicles", "veh-1", "--key", key + ".key"}, "--rollouts-dir is required"},
		{"resume with spec flags", []string{"rollout", "start", "--resume", "old", "--bundle", signed, "--waves", "100", "--key", key + ".key", "--rollouts-dir", stored}, "--resume goes on with the rollout as stored; --bundle, --waves describe a new one"},
		{"resume of an unknown rollout", []string{"rollout", "start", "--resume", "r9", "--key", key + ".key", "--rollouts-dir", stored}, "--resume: no such rollout r9"},
		{"unreachable broker", base(), "connect to tcp://127.0.0.1:1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, stored)
			out, stderr, err := fleet(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v, want an error saying %q\n%s%s", err, c.want, out, stderr)
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 0 {
				t.Errorf("a rollout was stored: %v", ents)
			}
			if !sameFiles(before, snapshot(t, stored)) {
				t.Error("the stored rollout changed")
			}
		})
	}
}
