package ingest

import (
	"fmt"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/presence"
	"github.com/vigil-av/vigil/sync/sink"
)

// onHeartbeat records a vehicle's heartbeat in the sink: per store, the
// last one in (boot, seq) order, with its per-stream heads, which bound
// what a store that dies lost (sink.Report). A heartbeat of version 1
// (no store) has nothing to record.
func (in *Ingester) onHeartbeat(m mqtt.Message) {
	if len(m.Payload()) == 0 {
		return // a retained heartbeat cleared
	}
	hb, err := presence.DecodeHeartbeat(m.Payload())
	if err == nil && hb.Store == 0 {
		return
	}
	if err == nil && presence.HeartbeatTopic(hb.Vehicle) != m.Topic() {
		err = fmt.Errorf("a heartbeat of vehicle %q on %s", hb.Vehicle, m.Topic())
	}
	if err != nil {
		in.heartbeatErrors.Add(1)
		in.log.Warn("heartbeat not recorded", zap.String("topic", m.Topic()), zap.Error(err))
		return
	}
	recorded, err := in.sink.NoteHeartbeat(hb.Vehicle, hb.Store, sink.Heartbeat{Boot: hb.Boot, Seq: hb.Seq, Wall: hb.Wall, Heads: hb.Heads})
	switch {
	case err != nil:
		in.heartbeatErrors.Add(1)
		in.log.Error("heartbeat not recorded", zap.String("vehicle", hb.Vehicle), zap.Error(err))
	case recorded:
		in.heartbeats.Add(1)
	default:
		in.heartbeatsOld.Add(1)
	}
}
