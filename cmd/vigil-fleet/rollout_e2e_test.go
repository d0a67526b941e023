package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// standIn is a lightweight vehicle for rollouts: the real command
// receiver (cmdlink.Receiver with command.Verifier over the operator's
// public key and a nonce cache) on a link of its own, an executor that
// takes model-deploy and model-rollback with deploywire's argument
// checks, and a client that publishes its deploy reports, retained, on
// vigil/v1/<vehicle>/deploy. A deployment runs through the lifecycle's
// states at once; a failing stand-in's trial fails.
type standIn struct {
	t    *testing.T
	id   string
	fail bool
	pub  mqtt.Client
	// hold, when set, holds each deployment after staged until it is
	// closed.
	hold chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	envs    []command.Envelope
	current deploywire.Report
}

func (s *standIn) commands(c command.Command) []command.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []command.Envelope
	for _, e := range s.envs {
		if e.Command == c {
			out = append(out, e)
		}
	}
	return out
}

func startStandIn(t *testing.T, b *mqtttest.Broker, id, pubFile string, fail bool, hold chan struct{}) *standIn {
	t.Helper()
	s := &standIn{t: t, id: id, fail: fail, hold: hold, pub: b.Client(t, id+"-reports", nil)}
	startReceiver(t, b, id, pubFile, nil, s.execute, func() bool { return false }, s.wg.Wait)
	return s
}

func (s *standIn) execute(_ context.Context, env command.Envelope) (json.RawMessage, error) {
	s.mu.Lock()
	s.envs = append(s.envs, env)
	s.mu.Unlock()
	switch env.Command {
	case deploywire.Deploy:
		a, err := deploywire.ParseDeployArgs(env.Args)
		if err != nil {
			return nil, cmdlink.BadArgs("%v", err)
		}
		s.wg.Add(1)
		go s.deploy(a, env.CorrelationID)
		return json.Marshal(map[string]string{"deployment": env.CorrelationID})
	case deploywire.Rollback:
		a, err := deploywire.ParseRollbackArgs(env.Args)
		if err != nil {
			return nil, cmdlink.BadArgs("%v", err)
		}
		s.mu.Lock()
		cur := s.current
		s.mu.Unlock()
		if cur.BundleHash == a.BundleHash && cur.Role == a.Role {
			s.report(cur.BundleHash, cur.Role, cur.Deployment, deploywire.RolledBack, "model-rollback: "+a.Reason)
		}
		return json.Marshal(map[string]string{"done": "rollback"})
	}
	return nil, cmdlink.BadArgs("command %q is not handled by this stand-in", env.Command)
}

// deploy runs a deployment through its states, reporting each.
func (s *standIn) deploy(a deploywire.DeployArgs, deployment string) {
	defer s.wg.Done()
	for _, st := range []deploywire.State{deploywire.Downloading, deploywire.Verified, deploywire.Staged} {
		s.report(a.BundleHash, a.Role, deployment, st, "")
	}
	if s.hold != nil {
		<-s.hold
	}
	s.report(a.BundleHash, a.Role, deployment, deploywire.Trial, "")
	if s.fail {
		s.report(a.BundleHash, a.Role, deployment, deploywire.TrialFailed, "trial: outputs diverge beyond the tolerance on 37 of 200 requests")
		return
	}
	s.report(a.BundleHash, a.Role, deployment, deploywire.Promoted, "")
	s.report(a.BundleHash, a.Role, deployment, deploywire.Committed, "")
}

func (s *standIn) report(hash, role, deployment string, st deploywire.State, reason string) {
	rep := deploywire.Report{Vehicle: s.id, BundleHash: hash, Role: role, State: st, Reason: reason, Deployment: deployment, Updated: time.Now()}
	raw, err := rep.Encode()
	if err == nil {
		err = mqtttest.Publish(s.pub, deploywire.ReportTopic(s.id), raw, true)
	}
	if err != nil {
		s.t.Errorf("%s: report %s: %v", s.id, st, err)
		return
	}
	s.mu.Lock()
	s.current = rep
	s.mu.Unlock()
}

// signedBundle packs the demo primary as pilotnet of the given version
// and signs it; it returns the tar and its hash.
func signedBundle(t *testing.T, version string) (string, string) {
	t.Helper()
	msk := modelKeygen(t)
	tarPath := filepath.Join(t.TempDir(), "pilotnet-"+version+".tar")
	mustFleet(t, packArgs(modelFiles(t), tarPath, "--version", version)...)
	mustFleet(t, "model", "sign", "--key", msk+".key", tarPath)
	b, err := bundle.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h, err := b.Manifest.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return tarPath, h
}

func fleetNames(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("veh-%02d", i))
	}
	return out
}

func loadStatus(t *testing.T, dir, id string) *rollout.Rollout {
	t.Helper()
	var doc struct {
		Running bool             `json:"running"`
		Rollout *rollout.Rollout `json:"rollout"`
	}
	out := mustFleet(t, "rollout", "status", "--rollouts-dir", dir, "--json", id)
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Rollout == nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if doc.Running {
		t.Errorf("status says a vigil-fleet still runs %s", id)
	}
	return doc.Rollout
}

// TestRolloutBreakerEndToEnd: vigil-fleet rollout start drives a
// simulated fleet of 20 stand-ins through Mosquitto, one in five of
// which fails its trial. The breaker (10%, judged from 5 outcomes)
// halts the rollout in wave 2, the first to cross it: vehicles 1 to 5
// got model-deploy (verified by their receivers), none of the other 15
// did. status shows the decisions; abort --rollback sends
// model-rollback to the four that committed, and not to the one that
// failed.
func TestRolloutBreakerEndToEnd(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	key := keygen(t)
	tarPath, hash := signedBundle(t, "2")
	names := fleetNames(20)
	fleetOf := map[string]*standIn{}
	for i, id := range names {
		fleetOf[id] = startStandIn(t, b, id, key+".pub", (i+1)%5 == 0, nil)
	}
	dir := filepath.Join(t.TempDir(), "rollouts")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, stderr, err := fleetCtx(ctx, "rollout", "start", "--bundle", tarPath, "--role", "primary", "--vehicles", strings.Join(names, ","),
		"--waves", "5,25,50,100%", "--max-failures", "10%", "--min-vehicles", "5", "--key", key+".key", "--broker", b.URL(),
		"--rollouts-dir", dir, "--id", "pilotnet-2", "--tick", "100ms")
	if err == nil || !strings.Contains(err.Error(), "rollout pilotnet-2 halted by its breaker: 1 of 5 vehicles with an outcome failed") {
		t.Fatalf("start: %v\n%s%s", err, out, stderr)
	}
	for _, want := range []string{"rollout pilotnet-2 created in " + filepath.Join(dir, "pilotnet-2.json"),
		"breaker_tripped", "1 of 5 outcomes failed (20%), more than max-failures 10%", "halted in wave 2 of 4",
		"rollout pilotnet-2 halted: 4 committed, 1 failed, 0 in progress, 15 not reached"} {
		if !strings.Contains(out, want) {
			t.Errorf("start's output lacks %q:\n%s", want, out)
		}
	}
	for i, id := range names {
		deploys := fleetOf[id].commands(deploywire.Deploy)
		if i < 5 {
			if len(deploys) != 1 || deploys[0].Args["bundle"] != hash || deploys[0].Args["version"] != "2" ||
				deploys[0].CorrelationID != rollout.CorrelationID("pilotnet-2", id, deploywire.Deploy, 1) {
				t.Errorf("%s executed %+v, want one model-deploy of %s", id, deploys, hash)
			}
		} else if len(deploys) != 0 {
			t.Errorf("%s (wave %d) executed model-deploy", id, map[bool]int{true: 3, false: 4}[i < 10])
		}
	}

	st := loadStatus(t, dir, "pilotnet-2")
	if st.Status != rollout.Halted || st.Current != 2 || st.Count(0).Committed != 4 || st.Vehicle("veh-05").Outcome != rollout.Failed ||
		st.Vehicle("veh-05").State != deploywire.TrialFailed || !strings.Contains(st.Vehicle("veh-05").Why, "outputs diverge") {
		t.Errorf("stored rollout: status %s wave %d counts %+v veh-05 %+v", st.Status, st.Current, st.Count(0), st.Vehicle("veh-05"))
	}
	text := mustFleet(t, "rollout", "status", "--rollouts-dir", dir, "pilotnet-2")
	t.Logf("rollout start printed:\n%s\nrollout status:\n%s", out, text)
	for _, want := range []string{"rollout pilotnet-2: pilotnet version 2 to primary — halted (no vigil-fleet runs it)", "bundle:   " + hash,
		"breaker:  1 of 5 outcomes failed; halts above 10% once 5 vehicles have an outcome", "decisions (",
		"wave 1   veh-01        send", "wave_started", "wave_finished", "veh-05        failed            reported trial_failed: trial: outputs diverge",
		"breaker_tripped", "(15 vehicles not reached yet)"} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	list := mustFleet(t, "rollout", "status", "--rollouts-dir", dir)
	if !strings.Contains(list, "pilotnet-2") || !strings.Contains(list, "halted") || !strings.Contains(list, "pilotnet v2") {
		t.Errorf("status list:\n%s", list)
	}

	out, stderr, err = fleetCtx(ctx, "rollout", "abort", "--rollouts-dir", dir, "--rollback", "--key", key+".key", "--broker", b.URL(), "--tick", "100ms", "pilotnet-2")
	if err != nil || !strings.Contains(out, "model-rollback: 4 taken, 0 not") {
		t.Fatalf("abort --rollback: %v\n%s%s", err, out, stderr)
	}
	for i, id := range names {
		rbs := fleetOf[id].commands(deploywire.Rollback)
		if want := i < 4; (len(rbs) == 1) != want || len(rbs) > 1 {
			t.Errorf("%s executed %d model-rollback, want %v", id, len(rbs), want)
		}
	}
	st = loadStatus(t, dir, "pilotnet-2")
	if st.Status != rollout.Aborted || !st.Finished() || st.Vehicle("veh-01").Rollback.Code != "ok" || st.Vehicle("veh-05").Rollback.N != 0 {
		t.Errorf("after abort: %s %+v", st.Status, st.Vehicle("veh-01").Rollback)
	}
}

// TestRolloutGoodEndToEnd: a bundle rolled out to 16 stand-ins listed
// in a file, over four waves, every one committing; the run is
// interrupted in wave 2 (every deployment held before its trial) and
// resumed with --resume, which goes on where it stopped and sends
// nothing twice.
func TestRolloutGoodEndToEnd(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	key := keygen(t)
	tarPath, _ := signedBundle(t, "3")
	names := fleetNames(16)
	hold := make(chan struct{})
	fleetOf := map[string]*standIn{}
	for _, id := range names {
		fleetOf[id] = startStandIn(t, b, id, key+".pub", false, hold)
	}
	list := filepath.Join(t.TempDir(), "vehicles.txt")
	if err := os.WriteFile(list, []byte("# the test fleet\n"+strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sink := filepath.Join(t.TempDir(), "sink")
	base := []string{"--key", key + ".key", "--broker", b.URL(), "--sink", sink, "--tick", "100ms"}

	// The first vehicle's deployment waits at staged: wave 1 cannot
	// finish. Interrupt the run once the rollout is stored with it sent.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out1 string
	go func() {
		var err error
		out1, _, err = fleetCtx(ctx, append([]string{"rollout", "start", "--bundle", tarPath, "--vehicles-file", list, "--max-failures", "5%",
			"--min-vehicles", "3", "--id", "pilotnet-3"}, base...)...)
		done <- err
	}()
	dir := filepath.Join(filepath.Dir(sink), "rollouts")
	deadline := time.Now().Add(30 * time.Second)
	for len(fleetOf["veh-01"].commands(deploywire.Deploy)) == 0 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("veh-01 never got model-deploy: %v", <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "interrupted with rollout pilotnet-3 running; go on with `vigil-fleet rollout start --resume pilotnet-3`") {
		t.Fatalf("interrupted start: %v\n%s", err, out1)
	}
	if st := loadStatus(t, dir, "pilotnet-3"); st.Current != 1 || st.Vehicle("veh-01").Deploy.N != 1 {
		t.Fatalf("stored after the interruption: wave %d, veh-01 %+v", st.Current, st.Vehicle("veh-01").Deploy)
	}
	close(hold)

	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, stderr, err := fleetCtx(ctx, append([]string{"rollout", "start", "--resume", "pilotnet-3"}, base...)...)
	if err != nil {
		t.Fatalf("resume: %v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(out, "rollout pilotnet-3 resumed from "+filepath.Join(dir, "pilotnet-3.json")) ||
		!strings.Contains(out, "rollout pilotnet-3 done: 16 committed, 0 failed, 0 in progress, 0 not reached") {
		t.Errorf("resume printed:\n%s", out)
	}
	for _, id := range names {
		if n := len(fleetOf[id].commands(deploywire.Deploy)); n != 1 {
			t.Errorf("%s executed model-deploy %d times", id, n)
		}
	}
	st := loadStatus(t, dir, "pilotnet-3")
	if st.Status != rollout.Done || len(st.Waves) != 4 || st.Count(0).Committed != 16 {
		t.Fatalf("status %s, %d waves, %+v", st.Status, len(st.Waves), st.Count(0))
	}
	var sizes []int
	for _, w := range st.Waves {
		sizes = append(sizes, len(w.Vehicles))
		if w.Started.IsZero() || w.Finished.IsZero() {
			t.Errorf("wave %v not started or finished", w.Percent)
		}
	}
	if !slices.Equal(sizes, []int{1, 1, 6, 8}) {
		t.Errorf("wave sizes %v, want 1, 1, 6, 8 (1, 2, 8 and 16 of 16 reached)", sizes)
	}
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storedLog reads rollout id's log from its file, as another process
// would.
func storedLog(t *testing.T, dir, id string) []rollout.Entry {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, id+".json"))
	if err != nil {
		return nil
	}
	r, err := rollout.Decode(raw)
	if err != nil {
		t.Fatalf("the stored rollout does not decode: %v", err)
	}
	return r.Log
}

func logIndex(log []rollout.Entry, what rollout.What, vehicle string, wave int) int {
	for i, e := range log {
		if e.What == what && (vehicle == "" || e.Vehicle == vehicle) && (wave == 0 || e.Wave == wave) {
			return i
		}
	}
	return -1
}

// TestRolloutPauseEndToEnd: a pause and a resume from other invocations
// reach the running start: while paused, wave 1 finishes but wave 2 does
// not start; once resumed, the rollout goes on to done.
func TestRolloutPauseEndToEnd(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	key := keygen(t)
	tarPath, _ := signedBundle(t, "2")
	names := fleetNames(4)
	hold := make(chan struct{})
	fleetOf := map[string]*standIn{}
	for _, id := range names {
		fleetOf[id] = startStandIn(t, b, id, key+".pub", false, hold)
	}
	dir := filepath.Join(t.TempDir(), "rollouts")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, _, err = fleetCtx(ctx, "rollout", "start", "--bundle", tarPath, "--vehicles", strings.Join(names, ","), "--waves", "50,100%",
			"--key", key+".key", "--broker", b.URL(), "--rollouts-dir", dir, "--id", "p1", "--tick", "50ms")
		done <- err
	}()
	waitFor(t, "wave 1 sent", func() bool {
		return len(fleetOf["veh-01"].commands(deploywire.Deploy)) == 1 && len(fleetOf["veh-02"].commands(deploywire.Deploy)) == 1
	})
	mustFleet(t, "rollout", "pause", "--rollouts-dir", dir, "p1")
	close(hold)
	waitFor(t, "wave 1 committed", func() bool {
		log := storedLog(t, dir, "p1")
		return logIndex(log, rollout.LogCommitted, "veh-01", 0) >= 0 && logIndex(log, rollout.LogCommitted, "veh-02", 0) >= 0
	})
	if n := len(fleetOf["veh-03"].commands(deploywire.Deploy)); n != 0 {
		t.Fatalf("veh-03 got model-deploy while the rollout was paused")
	}
	mustFleet(t, "rollout", "resume", "--rollouts-dir", dir, "p1")
	if err := <-done; err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	log := storedLog(t, dir, "p1")
	paused, resumed := logIndex(log, rollout.LogPaused, "", 0), logIndex(log, rollout.LogResumed, "", 0)
	wave2 := logIndex(log, rollout.LogWaveStarted, "", 2)
	committed := max(logIndex(log, rollout.LogCommitted, "veh-01", 0), logIndex(log, rollout.LogCommitted, "veh-02", 0))
	if !(paused >= 0 && paused < committed && committed < resumed && resumed < wave2) {
		t.Errorf("decisions out of order: paused %d, wave 1 committed %d, resumed %d, wave 2 started %d", paused, committed, resumed, wave2)
	}
	if st := loadStatus(t, dir, "p1"); st.Status != rollout.Done || st.Count(0).Committed != 4 {
		t.Errorf("status %s %+v", st.Status, st.Count(0))
	}
}

// TestRolloutResendEndToEnd: a vehicle that is not connected when its
// wave starts does not answer; the runner says so, sends model-deploy
// again after --resend-after, and the vehicle, connected meanwhile,
// takes the second envelope.
func TestRolloutResendEndToEnd(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	key := keygen(t)
	tarPath, _ := signedBundle(t, "2")
	dir := filepath.Join(t.TempDir(), "rollouts")
	first := startStandIn(t, b, "veh-01", key+".pub", false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, _, err = fleetCtx(ctx, "rollout", "start", "--bundle", tarPath, "--vehicles", "veh-01,veh-02", "--waves", "100%",
			"--ack-timeout", "500ms", "--resend-after", "1500ms", "--key", key+".key", "--broker", b.URL(), "--rollouts-dir", dir,
			"--id", "s1", "--tick", "50ms")
		done <- err
	}()
	waitFor(t, "no answer from veh-02", func() bool { return logIndex(storedLog(t, dir, "s1"), rollout.LogNoAnswer, "veh-02", 0) >= 0 })
	second := startStandIn(t, b, "veh-02", key+".pub", false, nil)
	if err := <-done; err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if !strings.Contains(out, "model-deploy not taken (no response within 500ms); sent again 1.5s after the last") ||
		!strings.Contains(out, "model-deploy envelope 2 (s1:veh-02:deploy-2): not taken") {
		t.Errorf("start printed:\n%s", out)
	}
	got := second.commands(deploywire.Deploy)
	if len(got) != 1 || got[0].CorrelationID != "s1:veh-02:deploy-2" || len(first.commands(deploywire.Deploy)) != 1 {
		t.Errorf("veh-02 executed %+v", got)
	}
	if st := loadStatus(t, dir, "s1"); st.Status != rollout.Done || st.Vehicle("veh-02").Deploy.N != 2 {
		t.Errorf("status %s, veh-02 %+v", st.Status, st.Vehicle("veh-02").Deploy)
	}
}
