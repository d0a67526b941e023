package edge

import (
	"math/rand/v2"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/internal/mqttsub"
)

// route is a topic filter, its QoS and its handler.
type route struct {
	filter  string
	qos     byte
	handler mqtt.MessageHandler
}

// cli is the paho client of the current (or last) connection attempt.
func (u *Uploader) cli() mqtt.Client { return *u.client.Load() }

func (u *Uploader) stopped() bool {
	select {
	case <-u.stop:
		return true
	default:
		return false
	}
}

// setDown marks the link down: Publish refuses, and the waits of the
// publishes in progress end.
func (u *Uploader) setDown() {
	u.linkMu.Lock()
	u.online.Store(false)
	if u.down != nil {
		close(u.down)
		u.down = nil
	}
	u.linkMu.Unlock()
}

func (u *Uploader) signalLost() {
	u.setDown()
	select {
	case u.lost <- struct{}{}:
	default:
	}
}

// onConnect runs in its own goroutine after each connection: it
// subscribes, in one SUBSCRIBE, to the ack topic (the session may be
// new: a broker without persistence forgets it), to the ingesters'
// status (QoS 0: an ingester that came online while the vehicle was
// away is no news once it reconnects, since everything in flight goes
// again anyway) and to Config.Subscriptions, publishes the retained
// online status, then tells the drain loop to resend what is in flight
// and the heartbeat loop to beat.
func (u *Uploader) onConnect(c mqtt.Client) {
	// One SUBSCRIBE for every filter: one round trip of the link before
	// the first batch, not one per filter. The handlers are the routes
	// linkLoop installed.
	filters := make(map[string]byte, len(u.routes))
	for _, r := range u.routes {
		filters[r.filter] = r.qos
	}
	if err := mqttsub.Subscribe(c, filters, nil, u.cfg.ConnectTimeout); err != nil {
		u.log.Warn("subscribe failed; reconnecting", zap.Error(err))
		// Drop the connection so the link loop starts over.
		c.Disconnect(0)
		u.signalLost()
		return
	}
	p := c.Publish(StatusTopic(u.cfg.Vehicle), 1, true, StatusOnline)
	if !p.WaitTimeout(u.cfg.ConnectTimeout) || p.Error() != nil {
		u.log.Warn("publish online status failed", zap.Error(p.Error()))
	}
	u.epoch.Add(1)
	u.linkMu.Lock()
	u.online.Store(true)
	if u.down == nil {
		u.down = make(chan struct{})
	}
	u.linkMu.Unlock()
	if !c.IsConnectionOpen() {
		// Lost while subscribing: paho's loss handler may have run
		// before the link was marked up (it signalled the link loop).
		u.setDown()
		return
	}
	u.bulk.notify() // PublishBulk may go on
	select {
	case u.connected <- struct{}{}:
	default:
	}
	select {
	case u.beatNow <- struct{}{}:
	default:
	}
}

func (u *Uploader) onAck(_ mqtt.Client, m mqtt.Message) {
	a, err := batch.DecodeAck(m.Payload())
	if err != nil {
		u.log.Warn("undecodable ack", zap.Error(err))
		return
	}
	if a.Status != batch.StatusRejected && a.Vehicle != u.cfg.Vehicle {
		u.ignored.Add(1)
		return
	}
	if a.Store != 0 && !u.ownsAck(a.Store, a.Stream, a.FirstSeq, a.LastSeq) {
		// An ack meant for an earlier incarnation of this vehicle's store
		// (moved aside as unreadable), or for records a restored store
		// labels otherwise (label.go): its ranges are not ours.
		u.ignored.Add(1)
		return
	}
	select {
	case u.acks <- a:
	case <-u.stop:
	}
}

// linkLoop connects, waits for the connection to drop, and reconnects
// with capped exponential backoff and jitter.
func (u *Uploader) linkLoop() {
	defer u.wg.Done()
	step := u.cfg.ReconnectMin
	for !u.stopped() {
		select { // forget a loss signalled for an earlier connection
		case <-u.lost:
		default:
		}
		if !u.waitHeld() { // a drill holds the link down (drill.go)
			return
		}
		u.state.Store(int32(Connecting))
		// A fresh paho client each time: with a persistent session, paho
		// never completes the tokens of publications cut off by a lost
		// connection, and their message ids would stay taken for good
		// (after enough outages, none would be left).
		// The routes go in before connecting: the persistent session may
		// deliver queued acks and commands before onConnect subscribes,
		// and paho leaves a message without a route unacknowledged.
		c := mqtt.NewClient(u.opts)
		for _, r := range u.routes {
			c.AddRoute(r.filter, r.handler)
		}
		u.client.Store(&c)
		t := c.Connect()
		for !t.WaitTimeout(100 * time.Millisecond) {
			// Paho bounds the attempt by ConnectTimeout.
		}
		if err := t.Error(); err != nil {
			u.state.Store(int32(Offline))
			u.log.Debug("connect failed", zap.Error(err), zap.Duration("retry_in", step))
			wait := step/2 + rand.N(step/2+1)
			step = min(step*2, u.cfg.ReconnectMax)
			if !u.backoff(wait) {
				return
			}
			continue
		}
		u.connects.Add(1)
		u.state.Store(int32(Draining))
		u.log.Info("connected", zap.String("broker", u.cfg.Broker))
		select {
		case <-u.lost:
			u.state.Store(int32(Offline))
			u.log.Info("connection lost")
			select { // a SyncNow made while connected was the drain loop's
			case <-u.syncLink:
			default:
			}
			// A deliberate disconnect may be needed when the loss came
			// from a failed subscribe; Disconnect on a closed link is
			// harmless.
			if c.IsConnectionOpen() {
				c.Disconnect(0)
			}
			step = u.cfg.ReconnectMin
			wait := step/2 + rand.N(step/2+1)
			if !u.backoff(wait) {
				return
			}
		case <-u.stop:
			return
		}
	}
}

// backoff waits before the next connection attempt, less if SyncNow is
// called; it reports false when the uploader is closing.
func (u *Uploader) backoff(wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-u.syncLink:
		u.log.Debug("reconnect wait cut short by SyncNow")
	case <-u.stop:
		return false
	}
	return true
}
