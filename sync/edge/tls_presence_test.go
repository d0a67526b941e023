package edge_test

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/presence"
)

// TestTLSPresenceUnderACL: under mqtttest.FleetACL, the ingester's
// online status reaches the vehicle (which then sends its lost window
// again at once: its ack timeout is an hour), and the operator's
// identity reads the vehicle's retained heartbeat, with the store it
// uploads from and its heads.
func TestTLSPresenceUnderACL(t *testing.T) {
	r, pki := tlsRig(t)
	r.appendN(storage.StreamEvents, 200)
	r.waitDurable()
	r.startUploader(withTLS(pki, vehicle), func(c *edge.Config) {
		c.AckTimeout, c.AckTimeoutMin = time.Hour, time.Hour
		c.HeartbeatInterval = 100 * time.Millisecond
		c.Software = &presence.Software{Version: "0.3.1", Commit: "9083a3363c19", ONNXRuntime: "1.24.3"}
	})
	waitUntil(t, 10*time.Second, "window sent", func() (bool, string) {
		st := r.up.Stats()
		for _, s := range st.Streams {
			if s.Stream == storage.StreamEvents {
				return s.InFlight > 0 && st.Heartbeats > 0, ""
			}
		}
		return false, "no events stream yet"
	})
	r.startIngester("ingest-a", ingestTLS(pki))
	r.waitDrained(10 * time.Second)
	if st := r.up.Stats(); st.IngesterOnline == 0 {
		t.Errorf("the vehicle never heard the ingester come online: %+v", st)
	}

	op := r.broker.Client(t, "fleet-op", pki.ClientTLS("fleet"))
	got := make(chan []byte, 1)
	if err := mqtttest.Subscribe(op, presence.HeartbeatTopic(vehicle), func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case raw := <-got:
		hb, err := presence.DecodeHeartbeat(raw)
		if err != nil || hb.Vehicle != vehicle || hb.Interval != 100*time.Millisecond || hb.Boot != r.store.Boot() ||
			hb.Software == nil || *hb.Software != (presence.Software{Version: "0.3.1", Commit: "9083a3363c19", ONNXRuntime: "1.24.3"}) {
			t.Fatalf("heartbeat %s: %+v, %v", raw, hb, err)
		}
		// The store it uploads from and its heads, every stream's.
		if hb.Store != r.store.StoreID() || len(hb.Heads) != len(r.store.Streams()) || hb.Heads[storage.StreamEvents] != r.store.Stream(storage.StreamEvents).Durable() || hb.Heads[storage.StreamEvents] < 200 {
			t.Errorf("heartbeat %s: store %016x, heads %v; the store is %016x", raw, hb.Store, hb.Heads, r.store.StoreID())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the operator read no heartbeat")
	}
}
