package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/internal/version"
	"github.com/vigil-av/vigil/sync/ckptlink"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/presence"
)

// cloud is the running link; nil when sync is off.
type cloud struct {
	up   *edge.Uploader
	cmds *commandChannel   // nil when commands are off
	ship *ckptlink.Shipper // nil when checkpoints are off
}

// startSync starts the uploader (and the command channel) when configured.
// Like storage, a link that cannot be set up leaves the daemon serving and
// saying so: the cloud is never on the inference path.
func (d *Daemon) startSync(ctx context.Context) error {
	sc := d.cfg.Sync
	switch {
	case !sc.Enabled:
		d.syncWhy = "sync.enabled: false"
		d.log.Info("sync off by configuration; nothing goes to the cloud")
		return nil
	case d.tel == nil:
		d.syncWhy = "the telemetry buffer is unavailable"
		d.warnings = append(d.warnings, "sync off: the telemetry buffer is unavailable")
		d.log.Error("sync configured, but storage is unavailable; nothing goes to the cloud")
		return nil
	}
	tlsCfg, err := sc.tlsConfig()
	if err != nil {
		d.syncOff("sync off", err)
		return nil
	}
	c := &cloud{}
	var subs []edge.Subscription
	if sc.Commands.Enabled {
		ch, err := d.newCommandChannel(c)
		if err != nil {
			d.syncOff("sync off: command channel", err)
			return nil
		}
		c.cmds = ch
		subs = ch.subscriptions()
	}
	if d.cfg.checkpointsOn() {
		ship, err := d.newShipper(c)
		if err != nil {
			d.syncOff("sync off: checkpoint shipper", err)
			return nil
		}
		c.ship = ship
		for _, s := range ship.Subscriptions() {
			subs = append(subs, edge.Subscription(s))
		}
	}
	subs = append(subs, d.deploySubscriptions()...)
	ec := sc.Config
	ec.Vehicle, ec.Boot, ec.TLS, ec.Subscriptions = d.cfg.VehicleID, d.tel.store.Boot(), tlsCfg, subs
	// What the vehicle runs goes in its heartbeats; a version string a
	// heartbeat cannot carry (set so by the linker) leaves them without.
	if sw := (&presence.Software{Version: Version, Commit: version.Commit, ONNXRuntime: d.runtime.Version}); sw.Validate() == nil {
		ec.Software = sw
	} else {
		d.log.Warn("heartbeats go without the software's versions", zap.Error(sw.Validate()))
	}
	up, err := edge.New(ec, d.tel.store, d.log.Named("sync"))
	if err != nil {
		d.syncOff("sync off", err)
		return nil
	}
	c.up = up
	if c.cmds != nil {
		if err := c.cmds.start(ctx); err != nil {
			return fmt.Errorf("sync: command channel: %w", err)
		}
	}
	if err := up.Start(ctx); err != nil {
		if c.cmds != nil {
			c.cmds.close(ctx)
		}
		return fmt.Errorf("sync: %w", err)
	}
	if c.ship != nil {
		if err := c.ship.Start(ctx); err != nil {
			uerr := up.Close(ctx)
			if c.cmds != nil {
				c.cmds.close(ctx)
			}
			return errors.Join(fmt.Errorf("sync: checkpoint shipper: %w", err), uerr)
		}
	}
	d.cloud = c
	d.log.Info("sync on", zap.String("broker", sc.Broker), zap.Bool("tls", tlsCfg != nil),
		zap.Bool("client_certificate", tlsCfg != nil && len(tlsCfg.Certificates) > 0), zap.Bool("commands", c.cmds != nil))
	return nil
}

// closeSync stops the link: what is not acknowledged stays in the buffer.
// It takes at most syncCloseTimeout of ctx, so that the steps after it
// keep the rest.
func (d *Daemon) closeSync(ctx context.Context) error {
	c := d.cloud
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, syncCloseTimeout)
	defer cancel()
	var serr error
	if c.ship != nil {
		serr = c.ship.Close(ctx) // it publishes through the uploader: first
	}
	err := errors.Join(serr, c.up.Close(ctx))
	if c.cmds != nil {
		c.cmds.close(ctx)
	}
	return err
}

// syncCloseTimeout bounds closeSync within Close's context.
const syncCloseTimeout = 5 * time.Second

// syncOff leaves the link off for err: status says why, start-up
// warns, and the log says msg.
func (d *Daemon) syncOff(msg string, err error) {
	d.syncWhy = err.Error()
	d.warnings = append(d.warnings, "sync off: "+err.Error())
	d.log.Error(msg, zap.Error(err))
}

// syncStatus reports the link.
func (d *Daemon) syncStatus() status.SyncStatus {
	c := d.cloud
	if c == nil {
		return status.SyncStatus{State: "off", Why: d.syncWhy}
	}
	s := c.up.Stats()
	out := status.SyncStatus{State: s.State.String(), Broker: d.cfg.Sync.Broker, Connects: s.Connects, Heartbeats: s.Heartbeats,
		InFlightBudget: s.InFlightBudget, MinAckRTTMs: float64(s.MinAckRTT) / float64(time.Millisecond), DeliveryRate: s.DeliveryRate,
		AckTimeoutMs: float64(s.AckTimeout) / float64(time.Millisecond), SmoothedAckRTTMs: float64(s.SmoothedAckRTT) / float64(time.Millisecond)}
	for _, st := range s.Streams {
		out.Streams = append(out.Streams, status.SyncStreamStatus{
			Stream: st.Stream, Cursor: st.Cursor, InFlight: st.InFlight, Sent: st.Sent,
			Acked: st.Acked, Resent: st.Resent, Rejected: st.Rejected, Bytes: st.Bytes, LastError: st.LastError,
		})
	}
	if c.cmds != nil {
		cs := c.cmds.status()
		out.Commands = &cs
	}
	return out
}
