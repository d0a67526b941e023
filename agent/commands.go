package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/watchdog"
)

// commandArgs checks that args hold exactly the names given (all
// required) and returns them in that order.
func commandArgs(args map[string]string, names ...string) ([]string, error) {
	for k := range args {
		if !slices.Contains(names, k) {
			want := "no arguments"
			if len(names) > 0 {
				want = strings.Join(names, ", ")
			}
			return nil, cmdlink.BadArgs("unknown argument %q; want %s", k, want)
		}
	}
	out := make([]string, len(names))
	for i, n := range names {
		v, ok := args[n]
		if !ok || v == "" {
			return nil, cmdlink.BadArgs("missing argument %s", n)
		}
		out[i] = v
	}
	return out, nil
}

// execute carries out a verified fleet command. The command channel has
// already checked the signature, the target, the expiry, the nonce and,
// for unsafe commands, that the vehicle is parked.
func (d *Daemon) execute(ctx context.Context, env command.Envelope) (json.RawMessage, error) {
	log := d.log.With(zap.String("command", string(env.Command)), zap.String("correlation_id", env.CorrelationID), zap.String("key_id", env.KeyID))
	switch env.Command {
	case command.Status:
		if _, err := commandArgs(env.Args); err != nil {
			return nil, err
		}
		return json.Marshal(d.Status())
	case command.Policy:
		a, err := commandArgs(env.Args, "policy")
		if err != nil {
			return nil, err
		}
		p, err := watchdog.ParsePolicy(a[0])
		if err != nil {
			return nil, cmdlink.BadArgs("policy: %v", err)
		}
		if err := d.operate(ctx, watchdog.Command{Op: watchdog.CmdSetPolicy, Policy: p, Reason: "fleet command " + env.CorrelationID}); err != nil {
			return nil, err
		}
		log.Info("policy set by fleet command", zap.Stringer("policy", p))
		return json.Marshal(map[string]string{"policy": p.String()})
	case command.Failover, command.Clear:
		a, err := commandArgs(env.Args, "backend")
		if err != nil {
			return nil, err
		}
		b, ok := backendByName(a[0])
		if !ok {
			return nil, cmdlink.BadArgs("backend %q: want primary, shadow or degraded", a[0])
		}
		op := watchdog.CmdClear
		if env.Command == command.Failover {
			op = watchdog.CmdForceOut
		}
		if err := d.operate(ctx, watchdog.Command{Op: op, Backend: b, Reason: "fleet command " + env.CorrelationID}); err != nil {
			return nil, err
		}
		log.Info("backend command by fleet", zap.Stringer("backend", b))
		return json.Marshal(map[string]string{"backend": b.String(), "done": string(env.Command)})
	case command.LogLevel:
		a, err := commandArgs(env.Args, "level")
		if err != nil {
			return nil, err
		}
		lvl, err := parseLevel(a[0])
		if err != nil {
			return nil, cmdlink.BadArgs("level: %v", err)
		}
		d.level.SetLevel(lvl)
		log.Info("log level set by fleet command", zap.Stringer("level", lvl))
		return json.Marshal(map[string]string{"level": lvl.String()})
	case command.SyncNow:
		if _, err := commandArgs(env.Args); err != nil {
			return nil, err
		}
		if c := d.cloud; c != nil && c.up != nil {
			c.up.SyncNow()
		}
		return json.Marshal(map[string]string{"sync": d.syncStatus().State})
	case command.Checkpoint:
		return d.executeCheckpoint(ctx, env.Args, log)
	case command.ModelDeploy:
		return d.executeModelDeploy(ctx, env, log)
	case command.ModelRollback:
		return d.executeModelRollback(ctx, env, log)
	case command.DrillRun:
		return d.executeDrillRun(env, log)
	}
	return nil, cmdlink.BadArgs("command %q is not handled by this daemon", env.Command)
}

func backendByName(s string) (watchdog.Backend, bool) {
	for b := range watchdog.NumBackends {
		if watchdog.Backend(b).String() == s {
			return watchdog.Backend(b), true
		}
	}
	return 0, false
}

// moving reports whether the supervisor says the vehicle is not parked
// (unknown counts as moving).
func (d *Daemon) moving() bool { return wire.VehicleState(d.vehicle.Load()) != wire.Parked }

// commandChannel is the signed fleet-command channel: a cmdlink.Receiver
// fed by the uploader's subscriptions, answering through its Publish.
type commandChannel struct {
	d    *Daemon
	rx   *cmdlink.Receiver
	last atomic.Pointer[string] // the last rejection, for status
}

// newCommandChannel builds the channel over the store's nonce cache and
// the configured trusted keys; c.up is set before it starts.
func (d *Daemon) newCommandChannel(c *cloud) (*commandChannel, error) {
	cc := d.cfg.Sync.Commands
	keys := map[string]ed25519.PublicKey{}
	for i, p := range cc.TrustedKeys {
		k, err := cmdlink.ReadPublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("sync.commands.trusted_keys[%d]: %w", i, err)
		}
		keys[command.KeyIDOf(k)] = k
	}
	nonces, err := command.NewStateNonces(d.tel.store, time.Now)
	if err != nil {
		return nil, fmt.Errorf("command nonce cache: %w", err)
	}
	v, err := command.NewVerifier(command.VerifierConfig{
		Keys: keys, Vehicle: d.cfg.VehicleID, Now: time.Now,
		MaxSkew: cc.MaxSkew, MaxLifetime: cc.MaxLifetime, Nonces: nonces,
	})
	if err != nil {
		return nil, err
	}
	ch := &commandChannel{d: d}
	ch.rx, err = cmdlink.NewReceiver(cmdlink.Config{
		Vehicle:     d.cfg.VehicleID,
		Verifier:    v,
		Exec:        cmdlink.ExecutorFunc(d.execute),
		Moving:      d.moving,
		ExecTimeout: cc.Timeout,
		// A restored store's nonce cache is the checkpoint's: commands
		// issued before the restore may have been seen by the dead unit.
		NotIssuedBefore: d.notIssuedBefore(),
		Log:             d.log.Named("commands"),
		Publish: func(topic string, payload []byte) error {
			return c.up.Publish(topic, payload, false, 5*time.Second)
		},
		Record: ch.record,
	})
	if err != nil {
		return nil, err
	}
	d.log.Info("fleet commands on", zap.Int("trusted_keys", len(keys)), zap.Strings("topics", ch.rx.Topics()))
	return ch, nil
}

func (ch *commandChannel) subscriptions() []edge.Subscription {
	var subs []edge.Subscription
	for _, t := range ch.rx.Topics() {
		subs = append(subs, edge.Subscription{Topic: t, Handler: ch.rx.Handle})
	}
	return subs
}

func (ch *commandChannel) start(ctx context.Context) error { return ch.rx.Start(ctx) }

// close stops the receiver; a command still running when ctx ends is
// abandoned, and the log says so.
func (ch *commandChannel) close(ctx context.Context) {
	if err := ch.rx.Close(ctx); err != nil {
		ch.d.log.Warn("fleet commands: closed with a command still running", zap.Error(err))
	}
}

// record stores every command's outcome in the events stream.
func (ch *commandChannel) record(ev cmdlink.Event) {
	if !ev.Accepted {
		// The message starts with the rejection class.
		s := fmt.Sprintf("%s (%s, %s)", ev.Message, ev.Command, ev.Time.UTC().Format(time.RFC3339))
		ch.last.Store(&s)
	}
	ch.d.tel.event(struct {
		Type string `json:"type"`
		cmdlink.Event
	}{"fleet_command", ev})
}

func (ch *commandChannel) status() status.CommandsStatus {
	s := ch.rx.Stats()
	out := status.CommandsStatus{
		Received: s.Received, Accepted: s.Accepted, Executed: s.Executed, BadArgs: s.BadArgs,
		Failed: s.Failed, Rejected: s.RejectedTotal(), Dropped: s.Dropped, Busy: s.Busy,
		OverKeyRate: s.OverKeyRate, Unanswered: s.Unanswered,
	}
	for r, n := range s.Rejected {
		if n > 0 {
			if out.RejectedBy == nil {
				out.RejectedBy = map[string]uint64{}
			}
			out.RejectedBy[string(r)] = n
		}
	}
	if p := ch.last.Load(); p != nil {
		out.LastRejection = *p
	}
	return out
}
