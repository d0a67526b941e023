package console

import (
	"testing"
	"time"

	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/presence"
)

func stateOf(l *Live, id string) presence.State {
	for _, v := range l.Vehicles() {
		if v.Observation.Vehicle == id {
			return v.State
		}
	}
	return ""
}

// TestLive: against Mosquitto, Live takes the retained status and
// heartbeat it finds, sees a vehicle's will turn it offline, and after a
// broker restart subscribes again and sees it come back.
func TestLive(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	veh := b.Client(t, "veh-7", nil)
	hb := func(seq uint64) []byte {
		p, err := presence.Heartbeat{Vehicle: "veh-7", Boot: 1, Seq: seq, Wall: time.Now(), Interval: time.Second, Store: 7,
			Heads: map[string]uint64{"events": seq}}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, m := range []struct {
		topic   string
		payload []byte
	}{{presence.StatusTopic("veh-7"), []byte("online")}, {presence.HeartbeatTopic("veh-7"), hb(1)}} {
		if err := mqtttest.Publish(veh, m.topic, m.payload, true); err != nil {
			t.Fatal(err)
		}
	}
	l, err := NewLive(LiveConfig{Broker: b.URL(), ClientID: "console-test", ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer l.Close(t.Context())
	waitFor(t, 5*time.Second, "veh-7 online from its retained messages", func() bool { return stateOf(l, "veh-7") == presence.Online })
	if err := mqtttest.Publish(veh, presence.StatusTopic("veh-7"), []byte("offline"), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "veh-7 offline", func() bool { return stateOf(l, "veh-7") == presence.Offline })

	b.Stop()
	waitFor(t, 5*time.Second, "the lost broker noticed", func() bool { return !l.Connected() })
	b.Restart()
	waitFor(t, 10*time.Second, "subscribed again", l.Connected)
	veh = b.Client(t, "veh-7b", nil)
	if err := mqtttest.Publish(veh, presence.StatusTopic("veh-7"), []byte("online"), true); err != nil {
		t.Fatal(err)
	}
	if err := mqtttest.Publish(veh, presence.HeartbeatTopic("veh-7"), hb(2), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "veh-7 online again", func() bool { return stateOf(l, "veh-7") == presence.Online })
	if _, err := NewLive(LiveConfig{ClientID: "x"}); err == nil {
		t.Error("no broker: no error")
	}
}
