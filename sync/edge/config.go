package edge

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/presence"
)

// DefaultWindow is Config.Window's default: the most batches in flight
// per stream. Fewer are, unless the link needs them (see Config.Window).
const DefaultWindow = 16

// Config configures an Uploader. The fields with YAML names are the link's
// settings as a configuration file gives them (vigild's sync section);
// the others are the program's to set (who uploads, with what TLS, for
// which subscriptions) or tuning left to code.
type Config struct {
	// Broker is the broker URL, e.g. tcp://broker:1883.
	Broker string `yaml:"broker"`
	// Vehicle is the vehicle id: a topic level and the batches' vehicle.
	Vehicle string `yaml:"-"`
	// ClientID is the fixed MQTT client id; empty means "vigil-edge-" +
	// Vehicle. The session is persistent (CleanSession false), so the
	// broker keeps acks for the uploader while it is away.
	ClientID string `yaml:"client_id"`
	// Boot is the uploading store's boot, carried in batch headers.
	Boot uint32 `yaml:"-"`
	// Lineage is the uploading store's lineage when it was restored from
	// a checkpoint (storage.Store.Lineage): its records up to the
	// parent's last of their stream go under the parent's store id, later
	// ones under its own with the lineage (label.go). nil means the
	// outbox's own when it has one (a *storage.Store has), else none.
	Lineage *storage.Lineage `yaml:"-"`
	// MaxPayload bounds an encoded batch; 0 means batch.DefaultMaxPayload
	// (128 KiB).
	MaxPayload int `yaml:"max_payload"`
	// UseNone sends batch bodies uncompressed; by default they are
	// flate-compressed (when that shrinks them).
	UseNone bool `yaml:"-"`
	// Window is the most unacknowledged batches each stream may have in
	// flight; 0 means DefaultWindow (16). Within it, the backlogs of all
	// streams share a budget of payload bytes in flight sized from the
	// link's measured ack round trip and delivery rate, from 2 batches of
	// MaxPayload (or Window, if less) up to Window of them: a fast link
	// with a long round trip gets the batches it needs to stay busy, and
	// a slow one does not queue batches ahead of live records. While a
	// stream drains a backlog that was there when the link came up,
	// LiveWindow batches are kept for its live lane (records appended
	// since), outside the budget, the rest for the backlog.
	Window int `yaml:"window"`
	// LiveWindow is the part of Window reserved for the live lane; 0
	// means a quarter of Window, at least 1 (4 by default: on vigil-bench
	// sync's emulated 20 Mbit/s uplink, a live p99 of 118 ms, against 150
	// with 2 and 230 with 1, where a record waits for the live batch
	// before it). Negative, or a Window of 1, turns the live lane off:
	// records then wait behind the backlog.
	LiveWindow int `yaml:"-"`
	// MaxBytesPerSecond caps the published payload bytes (a token bucket
	// holding up to one MaxPayload); 0 means no cap. Batches wait for
	// their bytes, live lanes first; Publish's messages are counted but
	// never wait.
	MaxBytesPerSecond int `yaml:"max_bytes_per_second"`
	// AckTimeout caps how long a batch waits for its ack before it is
	// sent again; 0 means 10 s. The wait follows the link's measured ack
	// round trip (smoothed round trip plus four times its variation, as
	// TCP's retransmission timeout, RFC 6298: see rto.go), from
	// AckTimeoutMin up to AckTimeout, 1 s before the first ack, and
	// doubles while nothing is acknowledged.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// AckTimeoutMin is the floor of that wait; 0 means 500 ms (or
	// AckTimeout, if less). Below it, the jitter of an ingester's writes
	// (fsyncs stalling on a busy disk) makes resends (harmless, but
	// duplicates on the vehicle's uplink) common: with 250 ms a test
	// under the race detector on a loaded 2-core machine saw them.
	AckTimeoutMin time.Duration `yaml:"-"`
	// RejectBackoffMax caps the wait before a batch the ingester rejected
	// is sent again: AckTimeout doubled with each rejection of it, up to
	// this; 0 means 10 minutes. A rejection is the cloud refusing the
	// batch (a misconfigured ingester, a vehicle unknown to it): sending
	// it at the normal pace would only flood the link and the logs.
	RejectBackoffMax time.Duration `yaml:"-"`
	// HeartbeatInterval is how often the uploader publishes the
	// vehicle's heartbeat (retained, on vigil/v1/<vehicle>/heartbeat; see
	// sync/presence) while connected, besides one at each connection; 0
	// means presence.DefaultInterval (10 s). The cloud calls a vehicle
	// stale once its last heartbeat is older than
	// presence.StaleIntervals (3) intervals, whatever its retained
	// status says.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// ReconnectMin and ReconnectMax bound the exponential reconnect
	// backoff (each wait is jittered to between half and all of the
	// current step); 0 means 500 ms and 60 s.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// ConnectTimeout bounds a connection attempt; 0 means 10 s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// TLS, when set, secures the connection (use an ssl:// or tls://
	// broker URL); give it the vehicle's client certificate for mutual
	// TLS. Nil means plain TCP.
	TLS *tls.Config `yaml:"-"`
	// Software, when set, is what the vehicle runs, carried in its
	// heartbeats (version 3; sync/presence). The daemon sets it.
	Software *presence.Software `yaml:"-"`
	// Subscriptions are subscribed at QoS 1 on every connection, after
	// the ack topic and before the online status; a refused or failed
	// subscription drops the connection, which is retried like any
	// other. See Subscription for what a handler may do.
	Subscriptions []Subscription `yaml:"-"`
	// Clock reads the time of the pacing, the rate cap and the
	// heartbeats, and ticks the heartbeat; nil means the system clock.
	// (The waits on the broker, and the drain loop's wake-ups, use real
	// timers.)
	Clock clock.Clock `yaml:"-"`
}

// Subscription is a topic filter the uploader's connection subscribes to
// for someone else (the command channel), with its handler.
//
// Handler is called on a goroutine of paho's, one per message, so calls
// may run concurrently and in no guaranteed order; the message is
// acknowledged to the broker (QoS 1) when Handler returns. Handler must
// not block: a slow one holds one of the session's in-flight slots and,
// while it waits on the uploader (Publish), the link. Hand the work to
// a goroutine of your own and return.
type Subscription struct {
	Topic   string
	Handler func(topic string, payload []byte)
}

func (c *Config) defaults() error {
	if _, err := url.Parse(c.Broker); err != nil || c.Broker == "" {
		return fmt.Errorf("edge: bad broker URL %q", c.Broker)
	}
	if !batch.ValidName(c.Vehicle) {
		return fmt.Errorf("edge: bad vehicle id %q", c.Vehicle)
	}
	if c.ClientID == "" {
		c.ClientID = "vigil-edge-" + c.Vehicle
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = batch.DefaultMaxPayload
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	switch {
	case c.LiveWindow < 0 || c.Window < 2:
		c.LiveWindow = 0
	case c.LiveWindow == 0:
		c.LiveWindow = max(1, c.Window/4)
	case c.LiveWindow >= c.Window:
		c.LiveWindow = c.Window - 1
	}
	if c.MaxBytesPerSecond < 0 {
		return fmt.Errorf("edge: negative MaxBytesPerSecond %d", c.MaxBytesPerSecond)
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.AckTimeoutMin <= 0 {
		c.AckTimeoutMin = 500 * time.Millisecond
	}
	c.AckTimeoutMin = min(c.AckTimeoutMin, c.AckTimeout)
	if c.HeartbeatInterval < 0 || (c.HeartbeatInterval > 0 && c.HeartbeatInterval < 10*time.Millisecond) {
		return fmt.Errorf("edge: HeartbeatInterval %v: want 0 (the default) or at least 10ms", c.HeartbeatInterval)
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = presence.DefaultInterval
	}
	if c.Software != nil {
		if err := c.Software.Validate(); err != nil {
			return fmt.Errorf("edge: Software: %w", err)
		}
	}
	if c.RejectBackoffMax <= 0 {
		c.RejectBackoffMax = 10 * time.Minute
	}
	c.RejectBackoffMax = max(c.RejectBackoffMax, c.AckTimeout)
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 500 * time.Millisecond
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = time.Minute
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	for i, sub := range c.Subscriptions {
		if sub.Topic == "" || sub.Handler == nil || strings.ContainsRune(sub.Topic, 0) {
			return fmt.Errorf("edge: subscription %d: empty topic or nil handler", i)
		}
	}
	return nil
}
