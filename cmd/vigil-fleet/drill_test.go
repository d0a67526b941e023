package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/drillstore"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// drillVehicle is a stand-in vehicle for fleet drills: the real command
// receiver (cmdlink.Receiver, command.Verifier over the operator's key,
// a nonce cache, the moving check) on a link of its own, and an
// executor that takes drill-run as the daemon does — it answers at once
// with the report's id and publishes the report (built here, with the
// figures the test gives) on vigil/v1/<vehicle>/drill when the drill
// ends. A moving one is refused by the receiver; a silent one accepts
// and never reports.
type drillVehicle struct {
	t      *testing.T
	id     string
	totals drill.Figures
	passed bool
	silent bool
	pub    mqtt.Client
	// forger, when set, publishes a forged report on this vehicle's
	// drill topic before the real one (another vehicle's identity).
	forger mqtt.Client
	wg     sync.WaitGroup

	mu   sync.Mutex
	envs []command.Envelope
	last time.Time // the last report's start: ids stay unique when runs follow within a second
}

func startDrillVehicle(t *testing.T, b *mqtttest.Broker, id, pubFile string, moving, silent, passed bool, totals drill.Figures) *drillVehicle {
	return startDrillVehicleTLS(t, b, id, pubFile, moving, silent, passed, totals, nil)
}

func startDrillVehicleTLS(t *testing.T, b *mqtttest.Broker, id, pubFile string, moving, silent, passed bool, totals drill.Figures, tlsCfg *tls.Config) *drillVehicle {
	t.Helper()
	d := &drillVehicle{t: t, id: id, totals: totals, passed: passed, silent: silent, pub: b.Client(t, id+"-drill", tlsCfg)}
	startReceiver(t, b, id, pubFile, tlsCfg, d.execute, func() bool { return moving }, d.wg.Wait)
	return d
}

func (d *drillVehicle) executed() []command.Envelope {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]command.Envelope(nil), d.envs...)
}

func (d *drillVehicle) execute(_ context.Context, env command.Envelope) (json.RawMessage, error) {
	d.mu.Lock()
	d.envs = append(d.envs, env)
	d.mu.Unlock()
	if env.Command != command.DrillRun {
		return nil, cmdlink.BadArgs("command %q is not handled by this stand-in", env.Command)
	}
	name := env.Args["name"]
	if name == "" || len(env.Args) != 1 {
		return nil, cmdlink.BadArgs("drill-run: want the argument name only, got %v", env.Args)
	}
	d.mu.Lock()
	started := time.Now().UTC().Truncate(time.Second)
	if !started.After(d.last) {
		started = d.last.Add(time.Second)
	}
	d.last = started
	d.mu.Unlock()
	rep := &drill.Report{Version: drill.ReportVersion, ID: started.Format("20060102T150405Z") + "-" + name, Name: name, Vehicle: d.id,
		Started: started, Origin: "fleet:" + env.CorrelationID, Passed: d.passed, Totals: d.totals,
		Phases: []drill.PhaseReport{{Name: "fault", Fault: "primary hang", Figures: d.totals, Passed: d.passed}}}
	if !d.passed {
		rep.Failures = []string{"failover 48.0ms over max_failover 33ms"}
	}
	if !d.silent {
		d.wg.Add(1)
		go func() { // the drill runs, then reports
			defer d.wg.Done()
			time.Sleep(150 * time.Millisecond)
			rep.Ended = time.Now().UTC()
			if d.forger != nil {
				forged := *rep
				forged.ID, forged.Passed = "forged", false
				raw, _ := json.Marshal(forged)
				if err := mqtttest.Publish(d.forger, drillTopic(d.id), raw, false); err != nil {
					d.t.Errorf("forged report: %v", err)
				}
			}
			raw, err := json.Marshal(rep)
			if err == nil {
				err = mqtttest.Publish(d.pub, drillTopic(d.id), raw, false)
			}
			if err != nil {
				d.t.Errorf("%s: publish report: %v", d.id, err)
			}
		}()
	}
	return json.Marshal(map[string]string{"id": rep.ID, "name": name})
}

func figures(detection, failover float64) drill.Figures {
	return drill.Figures{Requests: 450, OK: 450, DetectionMS: detection, FailoverMS: failover, BackToPrimaryMS: 1200, DrainMS: 800,
		Availability: 1, DurableLagMS: 4, UnsyncedMax: 12, UnsyncedAgeMS: 310}
}

func loadRunJSON(t *testing.T, out string) runJSON {
	t.Helper()
	var doc runJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Run == nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	return doc
}

// TestDrillRunFleetEndToEnd: vigil-fleet drill run over Mosquitto to
// four stand-ins — one passes, one fails its expectations, one moves,
// one accepts and never reports. With --only-parked the moving one is
// skipped; the run fails (exit status) for the failed and the silent
// one; the table, the store and list/show say so. A second run of the
// same drill on the good vehicles passes and is compared with the
// first; without --only-parked the moving vehicle fails the run.
func TestDrillRunFleetEndToEnd(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	key := keygen(t)
	good := startDrillVehicle(t, b, "veh-01", key+".pub", false, false, true, figures(41, 12))
	bad := startDrillVehicle(t, b, "veh-02", key+".pub", false, false, false, figures(60, 48))
	moving := startDrillVehicle(t, b, "veh-03", key+".pub", true, false, true, figures(1, 1))
	silent := startDrillVehicle(t, b, "veh-04", key+".pub", false, true, true, figures(1, 1))
	sink := filepath.Join(t.TempDir(), "sink")
	dir := filepath.Join(filepath.Dir(sink), "drills") // the default beside --sink
	base := []string{"drill", "run", "primary-hang", "--key", key + ".key", "--broker", b.URL(), "--sink", sink, "--timeout", "3s"}

	out, stderr, err := fleet(t, append(base, "--vehicles", "veh-01,veh-02,veh-03,veh-04", "--only-parked")...)
	t.Logf("first run:\n%s%s", out, stderr)
	if err == nil || !strings.Contains(err.Error(), "drill failed on veh-02 (failed), veh-04 (no-report)") {
		t.Fatalf("first run: %v", err)
	}
	for _, want := range []string{"drill primary-hang — run ", "4 vehicles asked, only parked: FAIL",
		"veh-01   passed     450", "41.0ms", "12.0ms", "1200.0ms", "800.0ms", "100.00%", "310.0ms",
		"veh-02   failed", "failover 48.0ms over max_failover 33ms",
		"veh-03   skipped", "the vehicle moves (unsafe_while_moving)",
		"veh-04   no-report", "no report within 3s",
		"fleet: 1 passed, 1 failed, 1 skipped, 1 no-report",
		"detection        2         41.0ms    60.0ms    60.0ms", "failover         2         12.0ms    48.0ms    48.0ms",
		"no earlier run of primary-hang to compare with", filepath.Join(dir, "reports", "veh-01")} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, v := range []*drillVehicle{good, bad, silent} {
		envs := v.executed()
		if len(envs) != 1 || envs[0].Args["name"] != "primary-hang" || envs[0].Command != command.DrillRun {
			t.Errorf("%s executed %+v", v.id, envs)
		}
	}
	if len(moving.executed()) != 0 {
		t.Error("the moving vehicle executed drill-run")
	}

	s, err := drillstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := s.Runs()
	if err != nil || len(runs) != 1 {
		t.Fatalf("stored runs %v, %v", runs, err)
	}
	first := runs[0]
	if !strings.HasSuffix(first.ID, "-primary-hang") || first.Ended.IsZero() || !first.OnlyParked ||
		first.Fleet.Counts[drillstore.Skipped] != 1 || first.Fleet.FailoverMS.P50 != 12 || first.Fleet.FailoverMS.Max != 48 {
		t.Errorf("stored run %+v", first)
	}
	v1 := first.Vehicles[0]
	rep, err := s.Report("veh-01", v1.ReportID)
	if err != nil || rep.Origin != "fleet:"+first.CorrelationID+"-veh-01" || rep.Totals.FailoverMS != 12 || !rep.Passed {
		t.Errorf("veh-01's stored report %+v, %v", rep, err)
	}
	if vs, _ := s.Vehicles(); strings.Join(vs, ",") != "veh-01,veh-02" {
		t.Errorf("vehicles with reports: %v", vs)
	}
	if m := first.Vehicles[2]; m.Outcome != drillstore.Skipped || !m.Moving || m.Code != string(command.CodeUnsafeWhileMoving) {
		t.Errorf("moving vehicle %+v", m)
	}

	// The same drill again, on the parked vehicles that report: better
	// figures, compared with the first run; exit status 0.
	good.totals = figures(35, 9)
	out, stderr, err = fleet(t, append(base, "--vehicles", "veh-01,veh-03", "--only-parked")...)
	t.Logf("second run:\n%s%s", out, stderr)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	for _, want := range []string{"2 vehicles asked, only parked: ok", "fleet: 1 passed, 0 failed, 1 skipped",
		"compared with the last run of primary-hang, " + first.ID, "passed                  1 → 1", "failed                  1 → 0",
		"failover max ms         48.0 → 9.0         better", "detection p50 ms        41.0 → 35.0        better", "max RPO ms              310.0 → 310.0      same"} {
		if !strings.Contains(out, want) {
			t.Errorf("second table lacks %q", want)
		}
	}

	// Without --only-parked the moving vehicle is refused and fails the
	// run; --json for scripts.
	out, _, err = fleet(t, append(base, "--vehicles", "veh-01,veh-03", "--json")...)
	if err == nil || !strings.Contains(err.Error(), "veh-03 (refused)") {
		t.Fatalf("third run: %v", err)
	}
	doc := loadRunJSON(t, out)
	if doc.OK || doc.Run.Vehicles[1].Outcome != drillstore.Refused || doc.Previous == nil || len(doc.Changes) == 0 ||
		doc.Reports["veh-01"] != s.ReportPath("veh-01", doc.Run.Vehicles[0].ReportID) {
		t.Errorf("third run's JSON: %+v", doc)
	}
	third := doc.Run.ID

	list := mustFleet(t, "drill", "list", "--drills", dir)
	t.Logf("list:\n%s", list)
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], third) || !strings.HasPrefix(lines[3], first.ID) ||
		!strings.Contains(lines[3], "FAIL") || !strings.Contains(lines[2], " ok") {
		t.Errorf("list:\n%s", list)
	}
	show := mustFleet(t, "drill", "show", "--drills", dir, first.ID)
	if !strings.Contains(show, "veh-04   no-report") || !strings.Contains(show, "no earlier run of primary-hang") {
		t.Errorf("show:\n%s", show)
	}
	doc = loadRunJSON(t, mustFleet(t, "drill", "show", "--drills", dir, "--json", third))
	if doc.Previous == nil || doc.Previous.ID == first.ID || doc.Run.ID != third {
		t.Errorf("show --json: previous %+v", doc.Previous)
	}
}

// TestDrillRunOverMutualTLS: under the fleet's ACL (docs/broker/acl)
// the operator's identity reads a vehicle's drill topic, and another
// vehicle cannot write there: its forged report never reaches the store.
func TestDrillRunOverMutualTLS(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.Options{TLS: pki, ACL: mqtttest.FleetACL})
	key := keygen(t)
	v := startDrillVehicleTLS(t, b, "veh-1", key+".pub", false, false, true, figures(30, 10), pki.ClientTLS("veh-1"))
	v.forger = b.Client(t, "veh-2-drill", pki.ClientTLS("veh-2"))
	op := pki.Client("fleet")
	dir := t.TempDir()
	out, stderr, err := fleet(t, "drill", "run", "primary-errors", "--vehicles", "veh-1", "--key", key+".key", "--drills", dir, "--timeout", "10s",
		"--broker", b.URL(), "--tls-ca", pki.CAFile, "--tls-cert", op.CertFile, "--tls-key", op.KeyFile)
	if err != nil || !strings.Contains(out, "veh-1    passed") {
		t.Fatalf("drill run over TLS: %v\n%s%s", err, out, stderr)
	}
	s, err := drillstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := s.Reports("veh-1")
	if err != nil || len(reps) != 1 || reps[0].ID == "forged" || reps[0].Name != "primary-errors" {
		t.Fatalf("veh-1's reports: %+v, %v", reps, err)
	}
}

// TestDrillRunInterrupted: interrupted while it waits for a report, drill
// run stores the run finished, the vehicle without a report as no-report,
// and fails.
func TestDrillRunInterrupted(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	key := keygen(t)
	v := startDrillVehicle(t, b, "veh-1", key+".pub", false, true, true, figures(1, 1))
	dir := t.TempDir()
	defer func() {
		if len(v.executed()) != 1 {
			t.Errorf("veh-1 executed %d commands", len(v.executed()))
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // interrupt once the run is stored waiting for the report
		defer cancel()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			s, err := drillstore.Open(dir)
			if err != nil {
				return
			}
			if runs, _ := s.Runs(); len(runs) == 1 && runs[0].Vehicles[0].Outcome == drillstore.Pending {
				return
			}
		}
	}()
	start := time.Now()
	out, _, err := fleetCtx(ctx, "drill", "run", "primary-hang", "--vehicles", "veh-1", "--key", key+".key", "--drills", dir, "--broker", b.URL(), "--timeout", "1m")
	if err == nil || !strings.Contains(err.Error(), "veh-1 (no-report)") || time.Since(start) > 30*time.Second {
		t.Fatalf("interrupted run: %v after %v\n%s", err, time.Since(start), out)
	}
	s, _ := drillstore.Open(dir)
	runs, err := s.Runs()
	if err != nil || len(runs) != 1 || runs[0].Ended.IsZero() || runs[0].Vehicles[0].Outcome != drillstore.NoReport ||
		runs[0].Vehicles[0].Message != "interrupted while waiting for the report" || runs[0].Vehicles[0].ReportID == "" {
		t.Fatalf("stored run: %+v, %v", runs, err)
	}
}

// TestDrillBadInput: every bad flag or argument is named, before
// anything is sent.
func TestDrillBadInput(t *testing.T) {
	key := keygen(t)
	dir := t.TempDir()
	run := []string{"drill", "run", "--key", key + ".key", "--drills", dir, "--broker", "tcp://127.0.0.1:1"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(run, "--vehicles", "a"), "want one standard drill's name"},
		{append(run, "primary-hang"), "--vehicles is required"},
		{append(run, "primary-hang", "--vehicles", "a,../b"), `--vehicles: "../b" is not a vehicle id`},
		{append(run, "primary-hang", "--vehicles", "a,a"), "--vehicles: a given twice"},
		{append(run, "../x", "--vehicles", "a"), `"../x" is not a standard drill; want one of broker-loss, checkpoint-restore,`},
		{append(run, "primary-hang", "--vehicles", "a", "--timeout", "0s"), "--timeout, --ack-timeout, --ttl and --connect-timeout must be positive"},
		{append(run, "primary-hang", "--vehicles", "a", "--bogus"), "flag provided but not defined: -bogus"},
		{append(run, "primary-hang", "--vehicles", "a", "--broker", "nope"), `--broker "nope"`},
		{[]string{"drill", "run", "primary-hang", "--vehicles", "a", "--drills", dir, "--key", filepath.Join(dir, "none.key")}, "--key"},
		{[]string{"drill", "run", "primary-hang", "--vehicles", "a", "--key", key + ".key"}, "--drills is required (or --sink"},
		{[]string{"drill", "list"}, "--drills is required"},
		{[]string{"drill", "list", "--drills", dir, "x"}, "unexpected arguments"},
		{[]string{"drill", "show", "--drills", dir}, "want one run id"},
		{[]string{"drill", "show", "--drills", dir, "nope"}, "not in the drill store"},
		{[]string{"drill", "show", "--drills", dir, "../../etc/passwd"}, `run id "../../etc/passwd"`},
		{[]string{"drill"}, "drill: give a subcommand: run, list or show"},
	} {
		_, stderr, err := fleet(t, c.args...)
		if err == nil || !strings.Contains(err.Error()+stderr, c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	if out := mustFleet(t, "drill", "list", "--drills", dir); !strings.Contains(out, "no drill runs in "+dir) {
		t.Errorf("empty list: %s", out)
	}
	// A corrupt run is named.
	os.WriteFile(filepath.Join(dir, "runs", "x.json"), []byte("{"), 0o644)
	if _, _, err := fleet(t, "drill", "list", "--drills", dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "runs", "x.json")) {
		t.Errorf("corrupt run: %v", err)
	}
	// Unreachable broker: an error, nothing stored.
	os.Remove(filepath.Join(dir, "runs", "x.json"))
	if _, _, err := fleet(t, append(run, "primary-hang", "--vehicles", "a", "--connect-timeout", "1s")...); err == nil || !strings.Contains(err.Error(), "drill reports: connect") {
		t.Errorf("no broker: %v", err)
	}
	if runs, _ := os.ReadDir(filepath.Join(dir, "runs")); len(runs) != 0 {
		t.Errorf("a run stored without a broker: %v", runs)
	}
}
