package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/agent/status"
)

// TestPrintSync: the cloud link's lines in `vigilctl status`, with the
// in-flight budget and what it was sized from once the link has shown
// them, and the reason when sync is off.
func TestPrintSync(t *testing.T) {
	var b bytes.Buffer
	printSync(&b, &status.SyncStatus{State: "draining", Broker: "ssl://broker:8883", Connects: 2,
		InFlightBudget: 384 << 10, MinAckRTTMs: 45.25, DeliveryRate: 3 << 20,
		Streams: []status.SyncStreamStatus{{Stream: "inference", Cursor: 40960, InFlight: 3, Sent: 13, Acked: 10}}})
	for _, want := range []string{
		"sync: draining   broker ssl://broker:8883   connections 2\n",
		"  in flight up to 384 KiB   (lowest ack round trip 45.2 ms, delivery 3072 KiB/s)\n",
		"  inference  acked through 40960   in flight 3   sent 13   acked 10",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}

	b.Reset()
	printSync(&b, &status.SyncStatus{State: "connecting", Broker: "ssl://broker:8883", InFlightBudget: 256 << 10})
	if got := b.String(); !strings.Contains(got, "  in flight up to 256 KiB\n") || strings.Contains(got, "round trip") {
		t.Errorf("before any ack:\n%s", got)
	}

	b.Reset()
	printSync(&b, &status.SyncStatus{State: "off", Why: "sync.enabled: false"})
	if got := b.String(); got != "sync: off (sync.enabled: false)\n" {
		t.Errorf("off: %q", got)
	}
}

// TestPrintRestored: a restored store's line names the lineage and when
// fleet commands start to count.
func TestPrintRestored(t *testing.T) {
	var b bytes.Buffer
	same := true
	st := &status.Status{Restored: &status.RestoredStatus{Store: "00000000000000bb", Parent: "00000000000000aa", Checkpoint: "000007-incremental",
		RestoredAt: "2026-12-04T20:00:00Z", ConfigSame: &same, CommandsIssuedBefore: "2026-12-04T20:00:00Z"}}
	if err := printStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	want := "restored: store 00000000000000bb from 00000000000000aa at checkpoint 000007-incremental, 2026-12-04T20:00:00Z; configuration the same; fleet commands issued before 2026-12-04T20:00:00Z refused\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	if err := printStatus(&b, &status.Status{}); err != nil || strings.Contains(b.String(), "restored:") {
		t.Errorf("a store never restored: %v\n%s", err, b.String())
	}
}

// TestPrintDeployments: the model deployments block of `vigilctl status`:
// the section's state with its reason, the counts, and one line per role
// with what its state has to show (download progress, trial counts, the
// health gate, a quarantine, the deadline, a report not yet sent);
// nothing for a daemon older than deployments.
func TestPrintDrills(t *testing.T) {
	var b bytes.Buffer
	printDrills(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no drills section printed %q, want nothing", b.String())
	}
	printDrills(&b, &status.DrillsStatus{Running: &status.DrillRunning{ID: "20261206T031500Z-primary-hang", Name: "primary-hang", Phase: "fault"},
		Last: &status.DrillLast{ID: "20261206T030000Z-link-cut", Name: "link-cut", Started: "2026-12-06T03:00:00Z", Passed: false}, Kept: 3})
	printDrills(&b, &status.DrillsStatus{Last: &status.DrillLast{ID: "x-gpu-lost", Name: "gpu-lost", Started: "t", Aborted: "the vehicle moved"}, Kept: 1})
	printDrills(&b, &status.DrillsStatus{})
	for _, want := range []string{
		"drill: primary-hang running (20261206T031500Z-primary-hang), phase fault   last link-cut 20261206T030000Z-link-cut at 2026-12-06T03:00:00Z: FAILED   3 reports kept (vigilctl drill report <id>)\n",
		"drill: none running   last gpu-lost x-gpu-lost at t: aborted: the vehicle moved   1 reports kept",
		"drill: none running   0 reports kept",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("drills lack %q:\n%s", want, b.String())
		}
	}
}

func TestPrintDeployments(t *testing.T) {
	var b bytes.Buffer
	printDeployments(&b, &status.DeploymentsStatus{State: "on", TrustedKeys: 2, Quarantined: 1, Roles: []status.DeploymentStatus{
		{Role: "primary", Bundle: "pilotnet", Version: 3, Hash: "0123456789abcdef0123", State: "trial", Reason: "installed",
			Trial: status.DeploymentTrialStatus{Compared: 40, Divergent: 1, Slow: 2, Errors: 0}, Deadline: "2026-12-05T12:00:00Z", Reported: true},
		{Role: "shadow", Bundle: "shadownet", Version: 2, Hash: "ffff", State: "downloading", Reason: "started",
			DownloadBytes: 1 << 20, BundleBytes: 4 << 20, Reported: false, ReportError: "link down"},
		{Role: "degraded", Bundle: "cpunet", Version: 5, Hash: "aaaa", State: "promoted", Reason: "swapped",
			Gate: status.DeploymentGateStatus{Requests: 12, Suspects: 1}, Reported: true},
	}})
	got := b.String()
	for _, want := range []string{
		"model deployments: on   2 trusted keys   1 quarantined\n",
		"  primary  pilotnet v3 (0123456789ab)   trial: installed   trial 40 compared, 1 divergent, 2 slow, 0 errors   until 2026-12-05T12:00:00Z\n",
		"  shadow   shadownet v2 (ffff)   downloading: started   1.0 MiB of 4.0 MiB   (not reported yet: link down)\n",
		"  degraded cpunet v5 (aaaa)   promoted: swapped   health gate 12 requests, 1 suspects\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("deployments lack %q:\n%s", want, got)
		}
	}

	b.Reset()
	printDeployments(&b, &status.DeploymentsStatus{State: "refusing", Why: "no trusted model-signing keys", Roles: []status.DeploymentStatus{
		{Role: "primary", Bundle: "pilotnet", Version: 4, Hash: "bbbb", State: "rolled_back", Reason: "health gate: watchdog failed it",
			Quarantine: "watchdog failed the promoted model", Reported: true}}})
	for _, want := range []string{
		"model deployments: refusing (no trusted model-signing keys)   0 trusted keys   0 quarantined\n",
		"rolled_back: health gate: watchdog failed it   quarantined: watchdog failed the promoted model\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("deployments lack %q:\n%s", want, b.String())
		}
	}

	b.Reset()
	printDeployments(&b, &status.DeploymentsStatus{})
	if b.Len() != 0 {
		t.Errorf("a daemon older than deployments: %q", b.String())
	}
}

// TestPrintVersion: the first line names the daemon's version, its
// commit (cut to 12 hex digits, dirty kept) and the ONNX Runtime it
// loaded.
func TestPrintVersion(t *testing.T) {
	var b bytes.Buffer
	st := &status.Status{VehicleID: "car-1", VehicleState: "parked", Version: "0.3.1",
		Commit: "9083a3363c19d005a9a4f9255f89da99e6916aca-dirty", Runtime: status.RuntimeStatus{Version: "1.24.3"}}
	if err := printStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(b.String(), "\n")
	if !strings.Contains(first, "vigild 0.3.1 (commit 9083a3363c19-dirty)") || !strings.HasSuffix(first, "ONNX Runtime 1.24.3") {
		t.Errorf("first line %q", first)
	}
}

// TestPrintWorker: a backend in a worker process gets a line with the
// worker's pid, restarts, kills, crashes, memory and why the last one
// ended; one without a worker serving says why; a backend in the daemon's
// own process gets none.
func TestPrintWorker(t *testing.T) {
	var b bytes.Buffer
	st := &status.Status{Backends: []status.BackendStatus{
		{Name: "primary", Loaded: true, State: "healthy", Worker: &status.WorkerStatus{Pid: 4242, Restarts: 3, Kills: 2, Crashes: 1,
			LastEnd: "a run was still busy 100ms after its deadline", LastRestartMs: 812.4, RSSBytes: 312 << 20, MemoryLimitBytes: 2048 << 20,
			KillGraceMs: 99, KillGraceFrom: "the watchdog's kill grace"}},
		{Name: "shadow", Loaded: true, State: "failed", Worker: &status.WorkerStatus{Crashes: 5, Restarts: 4, MemoryLimitBytes: 1024 << 20,
			LastEnd: "SIGABRT", Down: "SIGABRT; restarting"}},
		{Name: "degraded", Loaded: true, State: "healthy"},
	}}
	if err := printStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"primary worker: pid 4242   restarts 3 (kills 2, crashes 1)   memory 312 MiB of 2048 MiB   kill grace 99ms (the watchdog's kill grace)   last end: a run was still busy 100ms after its deadline (replaced in 812ms)\n",
		"shadow worker: pid none   restarts 4 (kills 0, crashes 5)   memory 0 MiB of 1024 MiB   last end: SIGABRT (replaced in 0ms)   DOWN: SIGABRT; restarting\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "degraded worker") {
		t.Errorf("an in-process backend got a worker line:\n%s", out)
	}
}
