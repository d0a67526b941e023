package edge

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/presence"
)

// The uploader's part in presence (sync/presence): it publishes the
// vehicle's heartbeat, and it listens for ingester replicas coming
// online, since what it sent while none was subscribed went nowhere.

// onIngestStatus hears an ingester replica's status. A retained one is
// as old as the broker's memory: what was in flight went again when
// this connection came up. One published while connected is a replica
// that has just subscribed: the drain loop sends everything in flight
// again at once rather than at its ack timeout. With replicas that
// already were online, that costs a duplicate of what was in flight.
func (u *Uploader) onIngestStatus(_ mqtt.Client, m mqtt.Message) {
	if m.Retained() || string(m.Payload()) != presence.StatusOnline {
		return
	}
	u.log.Debug("an ingester came online; sending what is in flight again", zap.String("topic", m.Topic()))
	select {
	case u.ingestUp <- struct{}{}:
	default:
	}
}

// heads is the heartbeat's heads: each stream's highest durable sequence
// number (durableHigh), for at most presence.MaxHeads streams.
func (u *Uploader) heads() map[string]uint64 {
	heads := make(map[string]uint64)
	for _, name := range u.outbox.Streams() {
		if len(heads) == presence.MaxHeads {
			break
		}
		if high, ok := u.durableHigh(name); ok {
			heads[name] = high
		}
	}
	return heads
}

// heartbeatLoop publishes the heartbeat at once on each connection
// (onConnect signals beatNow) and every HeartbeatInterval while
// connected.
func (u *Uploader) heartbeatLoop(tick clock.Ticker) {
	defer u.wg.Done()
	defer tick.Stop()
	var seq uint64
	for {
		select {
		case <-u.stop:
			return
		case <-u.beatNow:
		case <-tick.C():
		}
		if !u.online.Load() {
			continue
		}
		seq++
		now := u.clock.Now()
		hb := presence.Heartbeat{Vehicle: u.cfg.Vehicle, Boot: u.cfg.Boot, Seq: seq, Wall: now,
			Mono: now.Sub(u.started), Interval: u.cfg.HeartbeatInterval, Store: u.outbox.StoreID(), Heads: u.heads(), Software: u.cfg.Software}
		raw, err := hb.Encode()
		if err != nil { // the configuration was checked: it cannot
			u.log.Error("encode heartbeat", zap.Error(err))
			continue
		}
		if err := u.Publish(HeartbeatTopic(u.cfg.Vehicle), raw, true, min(u.cfg.HeartbeatInterval, u.cfg.ConnectTimeout)); err != nil {
			u.log.Debug("heartbeat not published", zap.Uint64("seq", seq), zap.Error(err))
			continue
		}
		u.beats.Add(1)
	}
}
