package cmdlink_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// onUploader starts a receiver of cfg on an uploader's own connection to
// b, as vigild wires it: Topics as edge Subscriptions with Handle,
// responses through Uploader.Publish. Both close at the test's end.
func onUploader(t *testing.T, b *mqtttest.Broker, st *storage.Store, cfg cmdlink.Config) *cmdlink.Receiver {
	t.Helper()
	var up *edge.Uploader
	cfg.Publish = func(topic string, p []byte) error { return up.Publish(topic, p, false, 5*time.Second) }
	r, err := cmdlink.NewReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var subs []edge.Subscription
	for _, topic := range r.Topics() {
		subs = append(subs, edge.Subscription{Topic: topic, Handler: r.Handle})
	}
	up, err = edge.New(edge.Config{Broker: b.URL(), Vehicle: cfg.Vehicle, ReconnectMin: 50 * time.Millisecond,
		ReconnectMax: 500 * time.Millisecond, ConnectTimeout: 5 * time.Second, Subscriptions: subs}, st, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := up.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		closeWithin(t, "uploader", up.Close)
		closeWithin(t, "receiver", r.Close)
	})
	return r
}

// The receiver on the uploader's own connection, as vigild wires it:
// Topics as edge Subscriptions with Handle, responses through
// Uploader.Publish, nonces in the vehicle's store.
func TestOnUploaderConnection(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	k := newKeys(t)
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	t.Cleanup(func() { st.Close(context.Background()) })
	nonces, err := command.NewStateNonces(st, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	exec := newExec("veh-1")
	ev := &events{}
	onUploader(t, b, st, cmdlink.Config{
		Vehicle: "veh-1", Verifier: newVerifier(t, "veh-1", k.pub, nonces), Exec: exec, Moving: func() bool { return false },
		Record: ev.record, Log: logger(t),
	})

	s := dialSender(t, b.URL())
	// The uploader subscribes before it publishes "online": once the
	// retained status says online, commands reach the receiver.
	deadline := time.Now().Add(30 * time.Second)
	for {
		vs, _ := s.Vehicles(waitCtx(t), 0)
		if len(vs) == 1 && vs[0].Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("veh-1 not online: %+v", vs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, target := range []string{"veh-1", command.TargetAll} {
		res, err := s.Send(waitCtx(t), command.Envelope{Target: target, Command: command.Status}, k.priv, "veh-1")
		if err != nil {
			t.Fatal(err)
		}
		if r := one(t, res, "veh-1"); !r.OK {
			t.Errorf("to %s: %+v", target, r)
		}
	}
	if n := len(exec.executed()); n != 2 {
		t.Errorf("%d executed", n)
	}
	if n := nonces.Len(); n != 2 {
		t.Errorf("%d nonces kept in the store", n)
	}
}
