package cmdlink_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// vehicle is one vehicle's end of the channel over a real broker: a
// receiver on its own Link.
type vehicle struct {
	id     string
	r      *cmdlink.Receiver
	link   *cmdlink.Link
	exec   *recExec
	ev     *events
	moving atomic.Bool
}

type vehicleOpts struct {
	nonces command.NonceStore
	topics []string // default: the receiver's
	// notIssuedBefore: the vehicle's store was restored then.
	notIssuedBefore time.Time
}

func startVehicle(t *testing.T, broker string, id string, pub ed25519.PublicKey, o vehicleOpts) *vehicle {
	t.Helper()
	v := &vehicle{id: id, exec: newExec(id), ev: &events{}}
	var link *cmdlink.Link
	r, err := cmdlink.NewReceiver(cmdlink.Config{
		Vehicle: id, Verifier: newVerifier(t, id, pub, o.nonces), Exec: v.exec, Moving: v.moving.Load,
		Publish: func(topic string, p []byte) error { return link.Publish(topic, p) },
		Record:  v.ev.record, Log: logger(t), NotIssuedBefore: o.notIssuedBefore,
	})
	if err != nil {
		t.Fatal(err)
	}
	topics := o.topics
	if topics == nil {
		topics = r.Topics()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	link, err = cmdlink.DialLink(ctx, cmdlink.LinkConfig{Broker: broker, ClientID: "edge-" + id + fmt.Sprint(time.Now().UnixNano()), Log: logger(t)}, topics, r.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	v.r, v.link = r, link
	t.Cleanup(func() {
		if err := v.stop(); err != nil {
			t.Errorf("vehicle stop: %v", err)
		}
	})
	return v
}

func (v *vehicle) stop() error {
	v.exec.unblock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v.r.Close(ctx)
	return v.link.Close(ctx)
}

func dialSender(t *testing.T, broker string) *cmdlink.Sender {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cmdlink.Dial(ctx, cmdlink.SenderConfig{Broker: broker, Log: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("sender close: %v", err)
		}
	})
	return s
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// one returns the only reply of res, from vehicle.
func one(t *testing.T, res cmdlink.Result, vehicle string) command.Response {
	t.Helper()
	if len(res.Replies) != 1 || len(res.Missing) != 0 || res.Replies[0].Vehicle != vehicle {
		t.Fatalf("replies %+v, missing %v; want one from %s", res.Replies, res.Missing, vehicle)
	}
	return res.Replies[0].Response
}

func TestEndToEnd(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	k := newKeys(t)
	v := startVehicle(t, b.URL(), "veh-1", k.pub, vehicleOpts{})
	s := dialSender(t, b.URL())

	res, err := s.Send(waitCtx(t), command.Envelope{Target: "veh-1", Command: command.LogLevel, Args: map[string]string{"level": "debug"}}, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	r := one(t, res, "veh-1")
	if !res.OK() || !r.OK || r.Code != command.CodeOK || r.CorrelationID != res.CorrelationID || res.CorrelationID == "" {
		t.Fatalf("%+v", res)
	}
	var result map[string]string
	if err := json.Unmarshal(r.Result, &result); err != nil || result["vehicle"] != "veh-1" || result["correlation_id"] != res.CorrelationID {
		t.Errorf("result %s: %v", r.Result, err)
	}
	ex := v.exec.executed()
	if len(ex) != 1 || ex[0].Command != command.LogLevel || ex[0].Args["level"] != "debug" || ex[0].KeyID != k.id ||
		ex[0].CorrelationID != res.CorrelationID || ex[0].Nonce != res.Envelope.Nonce {
		t.Errorf("executed %+v", ex)
	}
	if got := res.Envelope.Expires.Sub(res.Envelope.IssuedAt); got != cmdlink.DefaultTTL {
		t.Errorf("lifetime %v", got)
	}
	ev := v.ev.last(t)
	if !ev.Accepted || ev.Code != command.CodeOK || ev.CorrelationID != res.CorrelationID || ev.Topic != "vigil/v1/veh-1/cmd" || ev.Duration <= 0 {
		t.Errorf("event %+v", ev)
	}
	if st := v.r.Stats(); st.Received != 1 || st.Accepted != 1 || st.Executed != 1 || st.RejectedTotal() != 0 {
		t.Errorf("stats %+v", st)
	}

	// Nobody listens for veh-9: the wait ends at the context, no error.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err = s.Send(ctx, command.Envelope{Target: "veh-9", Command: command.Status}, k.priv)
	if err != nil || len(res.Replies) != 0 || len(res.Missing) != 1 || res.Missing[0] != "veh-9" || res.OK() {
		t.Errorf("absent vehicle: %+v, %v", res, err)
	}
	if _, err := s.Send(waitCtx(t), command.Envelope{Target: "veh/1", Command: command.Status}, k.priv); err == nil {
		t.Error("bad target sent")
	}
	if _, err := s.Send(waitCtx(t), command.Envelope{Target: "veh-1", Command: "reboot"}, k.priv); err == nil {
		t.Error("unknown command sent")
	}
}

// Every rejection class over the broker: an error response with the
// correlation id when the payload claims one, an event with the class,
// and nothing executed.
func TestRejections(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	k := newKeys(t)
	v1 := startVehicle(t, b.URL(), "veh-1", k.pub, vehicleOpts{})
	vBroken := startVehicle(t, b.URL(), "veh-nonces", k.pub, vehicleOpts{nonces: failingNonces{}})
	vMoving := startVehicle(t, b.URL(), "veh-moving", k.pub, vehicleOpts{})
	vMoving.moving.Store(true)
	now := time.Now().Truncate(time.Millisecond)
	vRestored := startVehicle(t, b.URL(), "veh-restored", k.pub, vehicleOpts{notIssuedBefore: now.Add(-time.Second)})
	s := dialSender(t, b.URL())

	good := envelope("veh-1", command.LogLevel, map[string]string{"level": "debug"})
	goodRaw := sign(t, good, k.priv)
	res, err := s.SendRaw(waitCtx(t), cmdlink.CommandTopic("veh-1"), goodRaw, good.CorrelationID, "veh-1")
	if err != nil || !one(t, res, "veh-1").OK {
		t.Fatalf("the valid command: %+v %v", res, err)
	}

	type tc struct {
		name    string
		vehicle string
		raw     []byte
		corr    string // the correlation id the response must carry
		reason  cmdlink.Reason
	}
	var cases []tc
	add := func(name, vehicle string, raw []byte, corr string, reason cmdlink.Reason) {
		cases = append(cases, tc{name, vehicle, raw, corr, reason})
	}
	add("malformed", "veh-1", []byte("not an envelope"), "", cmdlink.ReasonMalformed)
	add("oversized", "veh-1", append([]byte(`{"correlation_id":"big","pad":"`), append(bytes.Repeat([]byte("x"), 70<<10), '"', '}')...), "", cmdlink.ReasonMalformed)
	e := envelope("veh-1", command.Status, nil)
	var unsigned command.SignedEnvelope
	json.Unmarshal(sign(t, e, k.priv), &unsigned)
	unsigned.Signature = nil
	raw, _ := unsigned.Marshal()
	add("unsigned", "veh-1", raw, e.CorrelationID, cmdlink.ReasonUnsigned)
	e = envelope("veh-1", command.Status, nil)
	add("unknown key", "veh-1", sign(t, e, k.other), e.CorrelationID, cmdlink.ReasonUnknownKey)
	e = envelope("veh-1", command.LogLevel, map[string]string{"level": "debug"})
	var tampered command.SignedEnvelope
	json.Unmarshal(sign(t, e, k.priv), &tampered)
	tampered.Payload = bytes.Replace(tampered.Payload, []byte("debug"), []byte("error"), 1)
	raw, _ = tampered.Marshal()
	add("bad signature", "veh-1", raw, e.CorrelationID, cmdlink.ReasonBadSignature)
	e = envelope("veh-1", command.Status, nil)
	e.IssuedAt, e.Expires = now.Add(-time.Hour), now.Add(-time.Minute)
	add("expired", "veh-1", sign(t, e, k.priv), e.CorrelationID, cmdlink.ReasonExpired)
	e = envelope("veh-1", command.Status, nil)
	e.IssuedAt, e.Expires = now.Add(10*time.Minute), now.Add(15*time.Minute)
	add("not yet valid", "veh-1", sign(t, e, k.priv), e.CorrelationID, cmdlink.ReasonNotYetValid)
	e = envelope("veh-1", command.Status, nil)
	e.Expires = now.Add(2 * time.Hour)
	add("lifetime too long", "veh-1", sign(t, e, k.priv), e.CorrelationID, cmdlink.ReasonLifetimeTooLong)
	e = envelope("veh-2", command.Status, nil)
	add("wrong target", "veh-1", sign(t, e, k.priv), e.CorrelationID, cmdlink.ReasonWrongTarget)
	add("replayed", "veh-1", goodRaw, good.CorrelationID, cmdlink.ReasonReplayed)
	n, _ := command.NewNonce(nil)
	payload := fmt.Sprintf(`{"key_id":%q,"nonce":%q,"issued_at_ms":%d,"expires_ms":%d,"target":"veh-1","command":"reboot","correlation_id":"c-reboot"}`,
		k.id, n, now.UnixMilli(), now.Add(time.Minute).UnixMilli())
	add("unknown command", "veh-1", signCanonical(t, payload, k.priv), "c-reboot", cmdlink.ReasonUnknownCommand)
	e = envelope("veh-nonces", command.Status, nil)
	add("nonce store failing", "veh-nonces", sign(t, e, k.priv), e.CorrelationID, cmdlink.ReasonNonceStore)
	e = envelope("veh-moving", command.Policy, map[string]string{"policy": "warm"})
	add("unsafe while moving", "veh-moving", sign(t, e, k.priv), e.CorrelationID, cmdlink.ReasonUnsafeWhileMoving)
	// Valid in every other way, but issued before the vehicle's store
	// was restored.
	e = envelope("veh-restored", command.Status, nil)
	e.IssuedAt = now.Add(-2 * time.Second)
	add("issued before the restore", "veh-restored", sign(t, e, k.priv), e.CorrelationID, cmdlink.ReasonIssuedBeforeRestore)

	byID := map[string]*vehicle{"veh-1": v1, "veh-nonces": vBroken, "veh-moving": vMoving, "veh-restored": vRestored}
	covered := map[cmdlink.Reason]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := byID[c.vehicle]
			before := len(v.ev.all())
			res, err := s.SendRaw(waitCtx(t), cmdlink.CommandTopic(c.vehicle), c.raw, c.corr, c.vehicle)
			if err != nil {
				t.Fatal(err)
			}
			r := one(t, res, c.vehicle)
			wantCode := command.CodeRejected
			if c.reason == cmdlink.ReasonUnsafeWhileMoving {
				wantCode = command.CodeUnsafeWhileMoving
			}
			if r.OK || r.Code != wantCode || r.CorrelationID != c.corr || !strings.HasPrefix(r.Message, string(c.reason)+": ") {
				t.Errorf("response %+v, want code %s, message starting %q", r, wantCode, c.reason)
			}
			evs := v.ev.all()
			if len(evs) != before+1 {
				t.Fatalf("%d events, want %d", len(evs), before+1)
			}
			ev := evs[len(evs)-1]
			if ev.Accepted || ev.Reason != c.reason || ev.Code != wantCode || ev.CorrelationID != c.corr || ev.Message != r.Message {
				t.Errorf("event %+v", ev)
			}
			covered[c.reason] = true
		})
	}
	if len(covered) != len(cmdlink.Reasons) {
		t.Errorf("%d of %d classes covered", len(covered), len(cmdlink.Reasons))
	}
	if n := len(v1.exec.executed()); n != 1 {
		t.Errorf("veh-1 executed %d commands, want only the valid one", n)
	}
	if n := len(vBroken.exec.executed()) + len(vMoving.exec.executed()) + len(vRestored.exec.executed()); n != 0 {
		t.Errorf("%d executed by the failing-nonce, moving and restored vehicles", n)
	}
	// Issued after the restore, the same command runs.
	e = envelope("veh-restored", command.Status, nil)
	if res, err := s.SendRaw(waitCtx(t), cmdlink.CommandTopic("veh-restored"), sign(t, e, k.priv), e.CorrelationID, "veh-restored"); err != nil || !one(t, res, "veh-restored").OK {
		t.Errorf("a command issued after the restore: %+v, %v", res, err)
	}
	st := v1.r.Stats()
	if st.Accepted != 1 || st.RejectedTotal() != 11 || st.Rejected[cmdlink.ReasonMalformed] != 2 || st.Rejected[cmdlink.ReasonReplayed] != 1 {
		t.Errorf("veh-1 stats %+v", st)
	}
}

// A vehicle whose subscription is too wide (a wildcard) still executes
// nothing addressed to another vehicle, on that vehicle's topic.
func TestWrongTargetOnAnotherVehiclesTopic(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	k := newKeys(t)
	leaky := startVehicle(t, b.URL(), "veh-1", k.pub, vehicleOpts{topics: []string{"vigil/v1/+/cmd"}})
	v2 := startVehicle(t, b.URL(), "veh-2", k.pub, vehicleOpts{})
	s := dialSender(t, b.URL())

	res, err := s.Send(waitCtx(t), command.Envelope{Target: "veh-2", Command: command.Status}, k.priv, "veh-1", "veh-2")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replies) != 2 || len(res.Missing) != 0 {
		t.Fatalf("%+v", res)
	}
	for _, rep := range res.Replies {
		switch rep.Vehicle {
		case "veh-2":
			if !rep.Response.OK {
				t.Errorf("veh-2: %+v", rep.Response)
			}
		case "veh-1":
			if rep.Response.Code != command.CodeRejected || !strings.HasPrefix(rep.Response.Message, "wrong_target: ") ||
				rep.Response.CorrelationID != res.CorrelationID {
				t.Errorf("veh-1: %+v", rep.Response)
			}
		}
	}
	if res.OK() {
		t.Error("a result with a rejection is OK")
	}
	if n := len(leaky.exec.executed()); n != 0 {
		t.Errorf("veh-1 executed %d commands for veh-2", n)
	}
	if n := len(v2.exec.executed()); n != 1 {
		t.Errorf("veh-2 executed %d", n)
	}
	if ev := leaky.ev.last(t); ev.Reason != cmdlink.ReasonWrongTarget || ev.Topic != "vigil/v1/veh-2/cmd" || ev.Target != "veh-2" {
		t.Errorf("event %+v", ev)
	}
}

func TestUnsafeWhileMovingThenStopped(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	k := newKeys(t)
	v := startVehicle(t, b.URL(), "veh-1", k.pub, vehicleOpts{})
	v.moving.Store(true)
	s := dialSender(t, b.URL())

	policy := envelope("veh-1", command.Policy, map[string]string{"policy": "warm"})
	policyRaw := sign(t, policy, k.priv)
	res, err := s.SendRaw(waitCtx(t), cmdlink.CommandTopic("veh-1"), policyRaw, policy.CorrelationID, "veh-1")
	if err != nil {
		t.Fatal(err)
	}
	if r := one(t, res, "veh-1"); r.Code != command.CodeUnsafeWhileMoving || r.CorrelationID != policy.CorrelationID {
		t.Fatalf("while moving: %+v", r)
	}
	// Safe commands run while moving.
	res, err = s.Send(waitCtx(t), command.Envelope{Target: "veh-1", Command: command.Status}, k.priv)
	if err != nil || !one(t, res, "veh-1").OK {
		t.Fatalf("status while moving: %+v %v", res, err)
	}
	if ex := v.exec.executed(); len(ex) != 1 || ex[0].Command != command.Status {
		t.Fatalf("executed while moving: %+v", ex)
	}

	v.moving.Store(false)
	// The refused envelope spent its nonce: it does not run later.
	res, err = s.SendRaw(waitCtx(t), cmdlink.CommandTopic("veh-1"), policyRaw, policy.CorrelationID, "veh-1")
	if err != nil {
		t.Fatal(err)
	}
	if r := one(t, res, "veh-1"); r.Code != command.CodeRejected || !strings.HasPrefix(r.Message, "replayed: ") {
		t.Fatalf("the refused envelope again: %+v", r)
	}
	// A new one does.
	res, err = s.Send(waitCtx(t), command.Envelope{Target: "veh-1", Command: command.Policy, Args: map[string]string{"policy": "warm"}}, k.priv)
	if err != nil || !one(t, res, "veh-1").OK {
		t.Fatalf("after stopping: %+v %v", res, err)
	}
	ex := v.exec.executed()
	if len(ex) != 2 || ex[1].Command != command.Policy || ex[1].Args["policy"] != "warm" {
		t.Errorf("executed %+v", ex)
	}
	st := v.r.Stats()
	if st.Rejected[cmdlink.ReasonUnsafeWhileMoving] != 1 || st.Rejected[cmdlink.ReasonReplayed] != 1 || st.Executed != 2 {
		t.Errorf("stats %+v", st)
	}
}

func openStore(t *testing.T, dir string) *storage.Store {
	t.Helper()
	cfg := storage.DefaultConfig()
	cfg.Dir = dir
	st, err := storage.Open(context.Background(), cfg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The same signed envelope, resent after the vehicle restarted over its
// store, is refused as replayed.
func TestReplayAfterRestart(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	k := newKeys(t)
	s := dialSender(t, b.URL())
	dir := filepath.Join(t.TempDir(), "db")

	st := openStore(t, dir)
	nonces, err := command.NewStateNonces(st, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	v := startVehicle(t, b.URL(), "veh-1", k.pub, vehicleOpts{nonces: nonces})
	env := envelope("veh-1", command.Clear, map[string]string{"backend": "primary"})
	raw := sign(t, env, k.priv)
	res, err := s.SendRaw(waitCtx(t), cmdlink.CommandTopic("veh-1"), raw, env.CorrelationID, "veh-1")
	if err != nil || !one(t, res, "veh-1").OK {
		t.Fatalf("first time: %+v %v", res, err)
	}
	if err := v.stop(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir)
	t.Cleanup(func() { st.Close(context.Background()) })
	nonces, err = command.NewStateNonces(st, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if nonces.Len() != 1 {
		t.Fatalf("%d nonces after the restart", nonces.Len())
	}
	v2 := startVehicle(t, b.URL(), "veh-1", k.pub, vehicleOpts{nonces: nonces})
	res, err = s.SendRaw(waitCtx(t), cmdlink.CommandTopic("veh-1"), raw, env.CorrelationID, "veh-1")
	if err != nil {
		t.Fatal(err)
	}
	if r := one(t, res, "veh-1"); r.Code != command.CodeRejected || r.CorrelationID != env.CorrelationID || !strings.HasPrefix(r.Message, "replayed: ") {
		t.Errorf("after the restart: %+v", r)
	}
	if n := len(v2.exec.executed()); n != 0 {
		t.Errorf("the replay was executed")
	}
	if ev := v2.ev.last(t); ev.Reason != cmdlink.ReasonReplayed {
		t.Errorf("event %+v", ev)
	}
	// A fresh envelope still runs.
	res, err = s.Send(waitCtx(t), command.Envelope{Target: "veh-1", Command: command.Status}, k.priv)
	if err != nil || !one(t, res, "veh-1").OK {
		t.Errorf("fresh command: %+v %v", res, err)
	}
}

func TestTargetAll(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	k := newKeys(t)
	v1 := startVehicle(t, b.URL(), "veh-1", k.pub, vehicleOpts{})
	v2 := startVehicle(t, b.URL(), "veh-2", k.pub, vehicleOpts{})
	s := dialSender(t, b.URL())

	res, err := s.Send(waitCtx(t), command.Envelope{Target: command.TargetAll, Command: command.SyncNow}, k.priv, "veh-1", "veh-2")
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || len(res.Replies) != 2 {
		t.Fatalf("%+v", res)
	}
	seen := map[string]bool{}
	for _, rep := range res.Replies {
		seen[rep.Vehicle] = true
		if rep.Response.CorrelationID != res.CorrelationID {
			t.Errorf("%+v", rep)
		}
	}
	if !seen["veh-1"] || !seen["veh-2"] {
		t.Errorf("replies from %v", seen)
	}
	for _, v := range []*vehicle{v1, v2} {
		ex := v.exec.executed()
		if len(ex) != 1 || ex[0].Target != command.TargetAll || ex[0].Command != command.SyncNow {
			t.Errorf("%s executed %+v", v.id, ex)
		}
		if ev := v.ev.last(t); ev.Topic != cmdlink.FleetCommandTopic || !ev.Accepted {
			t.Errorf("%s event %+v", v.id, ev)
		}
	}

	// Waiting for nobody in particular: collects until the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err = s.Send(ctx, command.Envelope{Target: command.TargetAll, Command: command.Status}, k.priv)
	if err != nil || len(res.Replies) != 2 || len(res.Missing) != 0 || !res.OK() {
		t.Errorf("%+v %v", res, err)
	}
}

func TestVehicles(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	raw := rawClient(t, b.URL())
	publishRetained(t, raw, cmdlink.StatusTopic("veh-a"), cmdlink.StatusOnline)
	publishRetained(t, raw, cmdlink.StatusTopic("veh-b"), cmdlink.StatusOffline)
	publishRetained(t, raw, "vigil/v1/fleet/status", "not a vehicle")
	s := dialSender(t, b.URL())
	vs, err := s.Vehicles(waitCtx(t), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Vehicle != "veh-a" || !vs[0].Online || !vs[0].Retained || vs[1].Vehicle != "veh-b" || vs[1].Online || vs[1].Status != "offline" {
		t.Fatalf("%+v", vs)
	}
	if on := cmdlink.Online(vs); len(on) != 1 || on[0] != "veh-a" {
		t.Errorf("online %v", on)
	}
	// Live updates count too, and a cleared retained status removes it.
	publishRetained(t, raw, cmdlink.StatusTopic("veh-b"), cmdlink.StatusOnline)
	publishRetained(t, raw, cmdlink.StatusTopic("veh-a"), "")
	deadline := time.Now().Add(20 * time.Second)
	for {
		vs, _ = s.Vehicles(waitCtx(t), 0)
		if len(vs) == 1 && vs[0].Vehicle == "veh-b" && vs[0].Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%+v", vs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if vs[0].Retained {
		t.Error("a live update marked retained")
	}
}

func TestDialErrors(t *testing.T) {
	ctx := waitCtx(t)
	for _, url := range []string{"", "broker:1883", "http://localhost:1883", "tcp://"} {
		if _, err := cmdlink.Dial(ctx, cmdlink.SenderConfig{Broker: url}); err == nil || !strings.Contains(err.Error(), "bad broker URL") {
			t.Errorf("%q: %v", url, err)
		}
	}
	b := mqtttest.Start(t, mqtttest.Options{})
	addr := b.URL()
	b.Stop()
	if _, err := cmdlink.Dial(ctx, cmdlink.SenderConfig{Broker: addr, ConnectTimeout: 2 * time.Second}); err == nil || !strings.Contains(err.Error(), "connect to "+addr) {
		t.Errorf("broker down: %v", err)
	}
}
