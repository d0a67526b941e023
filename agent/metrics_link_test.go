package agent

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/internal/version"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/presence"
)

// TestMetricsOfTheLink: with the link up, the vehicle's heartbeat (what
// the fleet sees of it) carries the daemon's version, commit and loaded
// ONNX Runtime; the metrics show the link live or draining, heartbeats
// acknowledged, and payload bytes and batches sent by stream agreeing
// with the status document.
func TestMetricsOfTheLink(t *testing.T) {
	r := newCommandRig(t)
	d, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	for range 3 {
		infer(t, c, 500*time.Millisecond)
	}

	op := r.broker.Client(t, "fleet-op", r.pki.ClientTLS("fleet"))
	got := make(chan []byte, 1)
	if err := mqtttest.Subscribe(op, presence.HeartbeatTopic(r.vehicle), func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	info, err := inference.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case raw := <-got:
		hb, err := presence.DecodeHeartbeat(raw)
		want := presence.Software{Version: version.Version, Commit: version.Commit, ONNXRuntime: info.Version}
		if err != nil || hb.Software == nil || *hb.Software != want {
			t.Errorf("heartbeat %s (%v): want the software %+v", raw, err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the operator read no heartbeat")
	}

	// No ingester runs: batches go out and wait for acks.
	waitFor(t, 20*time.Second, "batches sent and a heartbeat counted", func() (bool, string) {
		st := fetchStatus(t, c)
		for _, s := range st.Sync.Streams {
			if s.Sent > 0 && s.Bytes > 0 && st.Sync.Heartbeats > 0 {
				return true, ""
			}
		}
		return false, st.Sync.State
	})
	st := fetchStatus(t, c)
	fams, body := scrape(t, d)
	state := series(fams, "vigil_sync_state", "state", st.Sync.State)
	if state == nil || state.GetGauge().GetValue() != 1 {
		t.Errorf("vigil_sync_state{state=%q} is not 1", st.Sync.State)
	}
	if got := counterOf(fams, "vigil_sync_heartbeats_total"); got < float64(st.Sync.Heartbeats) || got <= 0 {
		t.Errorf("vigil_sync_heartbeats_total %v, status %d before it", got, st.Sync.Heartbeats)
	}
	if got := counterOf(fams, "vigil_sync_connects_total"); got < 1 {
		t.Errorf("vigil_sync_connects_total %v", got)
	}
	var bytes float64
	for _, s := range st.Sync.Streams {
		b := counterOf(fams, "vigil_sync_sent_bytes_total", "stream", s.Stream)
		if b < float64(s.Bytes) {
			t.Errorf("vigil_sync_sent_bytes_total{stream=%q} %v, status %d before it", s.Stream, b, s.Bytes)
		}
		if n := counterOf(fams, "vigil_sync_batches_sent_total", "stream", s.Stream); n < float64(s.Sent) {
			t.Errorf("vigil_sync_batches_sent_total{stream=%q} %v, status %d before it", s.Stream, n, s.Sent)
		}
		bytes += b
	}
	if bytes <= 0 {
		t.Errorf("no payload bytes counted")
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}
