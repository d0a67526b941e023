package deploy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func testSpec() Spec {
	return Spec{Role: "primary", Name: "pilot", Version: 3, Hash: strings.Repeat("ab", 32), Issued: t0}
}

// inTrial returns a deployment in trial with some samples.
func inTrial(t *testing.T) *Deployment {
	t.Helper()
	d, _, err := New(DefaultConfig(), testSpec(), t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{DownloadDone{}, VerifyDone{}, InstallDone{}, TrialStarted{},
		TrialSample{Outcome: Answered, Within: true, Latency: ms, Budget: 33 * ms},
		TrialSample{Outcome: Answered, Within: false, Latency: 20 * ms, Budget: 33 * ms}} {
		if r := d.Step(t0.Add(time.Second), ev); r.Rejected != nil {
			t.Fatal(r.Rejected)
		}
	}
	return d
}

const ms = time.Millisecond

// TestSavedJSON pins the encoding the package documentation shows.
func TestSavedJSON(t *testing.T) {
	b, err := inTrial(t).Save().Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["format"] != 1.0 || m["state"] != "trial" || m["reason"] == "" {
		t.Fatalf("encoded %s", b)
	}
	trial := m["trial"].(map[string]any)
	if trial["compared"] != 2.0 || trial["divergent"] != 1.0 || trial["slow"] != 1.0 || trial["errors"] != 0.0 {
		t.Fatalf("trial %v", trial)
	}
	spec := m["spec"].(map[string]any)
	if spec["role"] != "primary" || spec["version"] != 3.0 || spec["hash"] != strings.Repeat("ab", 32) || spec["issued"] != "2026-01-01T12:00:00Z" {
		t.Fatalf("spec %v", spec)
	}
	if tol := m["tolerance"].(map[string]any); tol["abs"] != 0.05 || tol["rel"] != 0.0 {
		t.Fatalf("tolerance %v", tol)
	}
	if _, ok := m["held"]; ok {
		t.Fatal("held written while false")
	}
	back, err := DecodeSaved(b)
	if err != nil || !sameSaved(back, inTrial(t).Save()) {
		t.Fatalf("DecodeSaved: %v %+v", err, back)
	}
}

// TestDecodeSavedRefusals: each bad saved state is refused, naming what
// is wrong, and Restore refuses it too.
func TestDecodeSavedRefusals(t *testing.T) {
	good, err := inTrial(t).Save().Encode()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	set := func(path string, v any) string {
		return edit(func(m map[string]any) {
			keys := strings.Split(path, ".")
			for _, k := range keys[:len(keys)-1] {
				m = m[k].(map[string]any)
			}
			if v == nil {
				delete(m, keys[len(keys)-1])
			} else {
				m[keys[len(keys)-1]] = v
			}
		})
	}
	tests := []struct {
		name, data, want string
	}{
		{"not json", "{", "deploy state: unexpected EOF"},
		{"unknown member", set("colour", "red"), `unknown field "colour"`},
		{"trailing data", string(good) + "{}", "data after the JSON object"},
		{"format", set("format", 2), "format: 2, want 1"},
		{"spec", set("spec.hash", "xyz"), `spec: hash "xyz"`},
		{"state", set("state", "sleeping"), `unknown deployment state "sleeping"`},
		{"since", set("since", nil), "since/started: missing"},
		{"held", set("held", true), "held: only a promotion is held, state is trial"},
		{"tolerance", set("tolerance.abs", -1), "tolerance: tolerance abs"},
		{"counts", set("trial.compared", -1), "trial: counts"},
		{"divergent", set("trial.divergent", 5), "trial: counts"},
		{"gate", set("gate.requests", -3), "gate/crashes: negative count"},
		{"crashes", set("crashes", -1), "gate/crashes: negative count"},
		{"promote unpassed", set("state", "promoted"), "trial.passed: state promoted without a passed trial"},
		{"commit ungated", edit(func(m map[string]any) {
			m["state"] = "committed"
			m["trial"].(map[string]any)["passed"] = true
		}), "gate.passed: state committed without a passed health gate"},
		{"rollback without reason", edit(func(m map[string]any) {
			m["state"] = "rolling_back"
		}), "quarantine: rolling back without a reason"},
	}
	for _, tt := range tests {
		_, err := DecodeSaved([]byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: DecodeSaved: %v, want an error containing %q", tt.name, err, tt.want)
		}
		var s Saved
		if tt.name != "unknown member" && json.Unmarshal([]byte(tt.data), &s) == nil {
			if _, err := Restore(DefaultConfig(), s); err == nil {
				t.Errorf("%s: Restore accepted it", tt.name)
			}
			if _, err := s.Encode(); err == nil {
				t.Errorf("%s: Encode accepted it", tt.name)
			}
		}
	}
}

func TestRestoreRefusesBadConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GateRequests = 0
	var fe *FieldError
	if _, err := Restore(cfg, inTrial(t).Save()); !errors.As(err, &fe) || fe.Field != "gate_requests" {
		t.Fatalf("Restore: %v", err)
	}
}
