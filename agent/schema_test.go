package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/inference"
)

const statusSchemaPath = "../docs/status.schema.json"

// statusSchema compiles docs/status.schema.json, the STATUS document's
// published schema.
func statusSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(statusSchemaPath)
	if err != nil {
		t.Fatalf("compile %s: %v", statusSchemaPath, err)
	}
	return sch
}

// validateStatus checks a status document against the published schema.
func validateStatus(t *testing.T, sch *jsonschema.Schema, raw []byte) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("status is not JSON: %v", err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Errorf("status does not match %s: %v\n%s", statusSchemaPath, err, raw)
	}
}

// TestStatusMatchesSchema: the daemon's STATUS document, after it served,
// refused bad input and failed over, validates against the schema that
// docs/protocol.md points implementers to; the primary, in a worker
// process, shows its worker (pid, counters, memory) and the degraded rung,
// in the daemon, none; and the schema is strict enough to refuse a
// document with a field of the wrong type.
func TestStatusMatchesSchema(t *testing.T) {
	sch := statusSchema(t)
	cfg := daemonConfig(t)
	cfg.Models.Primary.Isolation = inference.Process
	_, c := startDaemon(t, cfg)
	for range 5 {
		infer(t, c, 200*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	validateStatus(t, sch, raw)

	var st status.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	// The kill grace is the watchdog's: 3 misses × the 33ms deadline.
	if w := st.Backends[0].Worker; w == nil || w.Pid <= 0 || w.MemoryLimitBytes != 2048<<20 || w.Down != "" ||
		w.KillGraceMs != 99 || w.KillGraceFrom != "the watchdog's kill grace" {
		t.Errorf("primary (isolation: process): worker %+v", w)
	}
	if w := st.Backends[2].Worker; w != nil {
		t.Errorf("degraded (in-process): worker %+v", w)
	}

	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for field, bad := range map[string]any{"mrm": "no", "backends": []any{}, "availability": 2.0, "policy": "lukewarm"} {
		orig := m[field]
		m[field] = bad
		b, _ := json.Marshal(m)
		doc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err := sch.Validate(doc); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s = %v: schema accepted it or did not name the field: %v", field, bad, err)
		}
		m[field] = orig
	}
	worker := m["backends"].([]any)[0].(map[string]any)["worker"].(map[string]any)
	worker["kills"] = -1
	b, _ := json.Marshal(m)
	doc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err := sch.Validate(doc); err == nil || !strings.Contains(err.Error(), "kills") {
		t.Errorf("worker.kills -1: schema accepted it or did not name the field: %v", err)
	}
}
