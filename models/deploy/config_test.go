package deploy

import (
	"strings"
	"testing"
)

// TestSetEveryKey: every key Set's documentation lists is accepted and
// changes its field; the list is the keys Set knows.
func TestSetEveryKey(t *testing.T) {
	values := map[string]string{
		"timeout_downloading": "1h", "timeout_verifying": "1m", "timeout_verified": "2m",
		"timeout_staged": "3m", "timeout_trial": "4h", "timeout_promoting": "5m",
		"timeout_promoted": "6h", "timeout_committing": "7m", "timeout_rolling_back": "8m",
		"timeout_parked": "9h", "trial_min_requests": "7", "trial_min_duration": "1m",
		"trial_sample_rate": "0.5", "trial_cost_cap": "0.1", "tolerance_abs": "0.2",
		"tolerance_rel": "0.3", "trial_max_errors": "4", "trial_max_divergence": "0.05",
		"latency_quantile": "0.95", "latency_fraction": "0.7", "gate_requests": "9",
		"gate_duration": "2m", "max_crashes": "5", "parked_only": "true", "skip_trial": "true",
	}
	for key, v := range values {
		c := DefaultConfig()
		if err := c.Set(key, v); err != nil {
			t.Errorf("Set(%q, %q): %v", key, v, err)
			continue
		}
		if c == DefaultConfig() {
			t.Errorf("Set(%q, %q) changed nothing", key, v)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Set(%q, %q): %v", key, v, err)
		}
	}
	// The documentation of Set lists exactly these keys.
	doc := "timeout_downloading, timeout_verifying, timeout_verified, timeout_staged, timeout_trial, timeout_promoting, " +
		"timeout_promoted, timeout_committing, timeout_rolling_back, timeout_parked, trial_min_requests, trial_min_duration, " +
		"trial_sample_rate, trial_cost_cap, tolerance_abs, tolerance_rel, trial_max_errors, trial_max_divergence, " +
		"latency_quantile, latency_fraction, gate_requests, gate_duration, max_crashes, parked_only, skip_trial"
	keys := strings.Split(doc, ", ")
	if len(keys) != len(values) {
		t.Fatalf("%d keys documented, %d tested", len(keys), len(values))
	}
	for _, k := range keys {
		if _, ok := values[k]; !ok {
			t.Errorf("documented key %q not tested", k)
		}
	}
}

func TestDefaultsValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
