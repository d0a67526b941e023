package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

// TestDrillFleetCommand: the fleet's signed drill-run, through the real
// command link, is refused while the vehicle moves; on the parked vehicle
// it answers at once with the report's id, and the report follows on the
// vehicle's drill topic, as the fleet identity reads it under the fleet's
// ACL, the same as the one the vehicle keeps; its figures match those
// computed from the store's records.
func TestDrillFleetCommand(t *testing.T) {
	r := newCommandRig(t)
	r.cfg.Drills.Allowed = true
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)

	reports := make(chan []byte, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := cmdlink.DialLink(ctx, cmdlink.LinkConfig{Broker: r.broker.URL(), TLS: r.pki.ClientTLS("fleet"), ClientID: "fleet-drills"},
		[]string{DrillTopic("+")}, func(topic string, p []byte) {
			if topic == DrillTopic(r.vehicle) {
				reports <- append([]byte(nil), p...)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })

	resp, _ := r.send(r.priv, command.DrillRun, map[string]string{"name": "primary-hang"})
	if resp.OK || resp.Code != command.CodeUnsafeWhileMoving {
		t.Fatalf("drill-run while driving: %+v", resp)
	}
	setVehicle(t, c, client.Parked)
	resp, _ = r.send(r.priv, command.DrillRun, map[string]string{"name": "no-such-drill"})
	if resp.OK || resp.Code != command.CodeBadArgs || !strings.Contains(resp.Message, "primary-hang") {
		t.Fatalf("drill-run of an unknown drill: %+v", resp)
	}
	resp, corr := r.send(r.priv, command.DrillRun, map[string]string{"name": "primary-hang"})
	var started struct{ ID, Name string }
	if !resp.OK || json.Unmarshal(resp.Result, &started) != nil || started.Name != "primary-hang" || !strings.HasSuffix(started.ID, "-primary-hang") {
		t.Fatalf("drill-run: %+v", resp)
	}
	var pub drill.Report
	select {
	case p := <-reports:
		if err := json.Unmarshal(p, &pub); err != nil {
			t.Fatalf("published report: %v\n%s", err, p)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no report on the drill topic")
	}
	if pub.ID != started.ID || pub.Origin != "fleet:"+corr || pub.Aborted != "" || pub.Totals.Requests == 0 || pub.Vehicle != r.vehicle {
		t.Fatalf("published report %s origin %q aborted %q vehicle %q, %d requests", pub.ID, pub.Origin, pub.Aborted, pub.Vehicle, pub.Totals.Requests)
	}
	kept, _ := waitDrillReport(t, c, started.ID, 5*time.Second)
	a, _ := json.Marshal(kept.Totals)
	b, _ := json.Marshal(pub.Totals)
	if string(a) != string(b) || kept.Passed != pub.Passed {
		t.Errorf("kept totals %s, published %s", a, b)
	}
	t.Logf("fleet drill: passed %v, failures %v, totals %s", pub.Passed, pub.Failures, b)

	// The standard drill's figures against the store's records.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	total, fault := checkTelemetry(t, r.cfg, &pub, 33*time.Millisecond)
	compareTelemetry(t, &pub, total, fault)
}
