package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/deploy"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

// TestDeploymentsConfig: the deployments section is read over the
// defaults (the lifecycle key by key through deploy.Config.Set, the
// trial's fields by name), and its directories default under data_dir.
func TestDeploymentsConfig(t *testing.T) {
	pub, _, _, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "model.pub")
	if err := os.WriteFile(key, bundle.MarshalPublicKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(t, `
data_dir: /data
deployments:
  trusted_keys: [`+key+`]
  lifecycle:
    gate_requests: 7
    timeout_trial: 1h
    skip_trial: true
  trial:
    max_rate: 3
    run_timeout: 50ms
`)
	if err != nil {
		t.Fatal(err)
	}
	dc := cfg.Deployments
	def := deploy.DefaultConfig()
	if dc.Lifecycle.GateRequests != 7 || dc.Lifecycle.Timeouts.Trial != time.Hour || !dc.Lifecycle.SkipTrial ||
		dc.Lifecycle.TrialMinRequests != def.TrialMinRequests || dc.Trial.MaxRate != 3 || dc.Trial.RunTimeout != 50*time.Millisecond ||
		len(dc.TrustedKeys) != 1 {
		t.Fatalf("deployments: %+v", dc)
	}
	if cfg.SlotDir() != "/data/models" || cfg.BundleStagingDir() != "/data/bundles" {
		t.Fatalf("dirs: %s %s", cfg.SlotDir(), cfg.BundleStagingDir())
	}
	d := DefaultConfig()
	if len(d.Deployments.TrustedKeys) != 0 || d.Deployments.Lifecycle.Config != def {
		t.Fatalf("defaults: %+v", d.Deployments)
	}
}

// TestDeploymentsConfigRefusals: each bad setting is refused naming its
// field (and line, for the lifecycle's keys).
func TestDeploymentsConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	cmdPub, _, _, err := command.KeyGen(nil)
	if err != nil {
		t.Fatal(err)
	}
	cmdKey := filepath.Join(dir, "fleet.pub")
	if err := os.WriteFile(cmdKey, cmdlink.MarshalPublicKey(cmdPub), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"deployments: {lifecycle: {no_such_knob: 1}}":                              "deployments.lifecycle.no_such_knob (line 1)",
		"deployments: {lifecycle: {gate_requests: many}}":                          "deployments.lifecycle.gate_requests",
		"deployments: {lifecycle: {gate_requests: [1]}}":                           "deployments.lifecycle.gate_requests",
		"deployments: {lifecycle: [1]}":                                            "deployments.lifecycle (line 1)",
		"deployments: {lifecycle: {trial_min_duration: 2h, timeout_trial: 1h}}":    "deployments.lifecycle.trial_min_duration: must be at least 0 and less than timeout_trial (1h0m0s)",
		"deployments: {lifecycle: {gate_requests: 0}}":                             "deployments.lifecycle.gate_requests: must be at least 1",
		"deployments: {trial: {sample_rate: 2}}":                                   "deployments.trial",
		"deployments: {trusted_keys: [" + filepath.Join(dir, "missing.pub") + "]}": "deployments.trusted_keys[0]",
		"deployments: {trusted_keys: [" + cmdKey + "]}":                            "deployments.trusted_keys[0]",
		"deployments: {slot_dri: x}":                                               "slot_dri",
	}
	for y, field := range cases {
		_, err := parse(t, y)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming %s", y, err, field)
		}
	}
}
