package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/storage"
)

// TestStatusCountsRequestFaults: frames that every rung answers with NaN
// (a drill on all three) are the request's fault, not the backends': they
// show in the status and the metrics as request faults, in the events stream
// as a request-fault alert, and every backend stays healthy.
func TestStatusCountsRequestFaults(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Drills.Allowed = true
	cfg.Metrics.Listen = "127.0.0.1:0"
	d, c := startDaemon(t, cfg)
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []client.Backend{client.Primary, client.Shadow, client.Degraded} {
		if err := control(t, c, client.ControlRequest{Op: client.OpDrillFault, Backend: b, FaultKind: "nan"}); err != nil {
			t.Fatal(err)
		}
	}
	const frames = 3
	for range frames {
		if resp := infer(t, c, 200*time.Millisecond); resp.OK() {
			t.Fatalf("an answer with every rung returning NaN: %+v", resp)
		}
	}
	var st status.Status
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st = fetchStatus(t, c); st.Counters.RequestFaults == frames {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("request faults %d, want %d", st.Counters.RequestFaults, frames)
		}
	}
	for _, b := range st.Backends {
		if b.State != "healthy" {
			t.Errorf("%s %s (%s) after poisoned frames", b.Name, b.State, b.Reason)
		}
	}
	if st.Counters.Failovers != 0 || st.MRM {
		t.Errorf("counters %+v, mrm %v", st.Counters, st.MRM)
	}

	r, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if want := fmt.Sprintf("vigil_request_faults_total %d\n", frames); !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q:\n%s", want, body)
	}

	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sto, err := storage.Open(ctx, cfg.StorageConfig(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer sto.Close(ctx)
	events, err := sto.Read(storage.StreamEvents, 0, 1000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range events {
		var e transitionEvent
		if rec.Kind == storage.KindData && json.Unmarshal(rec.Payload, &e) == nil &&
			e.Type == "alert" && e.Kind == "request-fault" && strings.Contains(e.Reason, "invalid output from primary (NaN), shadow (NaN) and degraded (NaN)") {
			return
		}
	}
	t.Errorf("no request-fault alert among %d events", len(events))
}
