package cmdlink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

// unit is a receiver fed through Handle directly, answering into a
// capture: what does not need the broker.
type unit struct {
	r      *cmdlink.Receiver
	exec   *recExec
	pub    *capture
	ev     *events
	moving atomic.Bool
	keys   keys
}

func newUnit(t *testing.T, edit func(*cmdlink.Config)) *unit {
	t.Helper()
	u := &unit{exec: newExec("veh-1"), pub: newCapture(t), ev: &events{}, keys: newKeys(t)}
	cfg := cmdlink.Config{
		Vehicle: "veh-1", Verifier: newVerifier(t, "veh-1", u.keys.pub, nil), Exec: u.exec,
		Moving: u.moving.Load, Publish: u.pub.publish, Record: u.ev.record, Log: logger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	r, err := cmdlink.NewReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u.r = r
	t.Cleanup(func() {
		u.exec.unblock()
		closeWithin(t, "receiver", r.Close)
	})
	return u
}

func (u *unit) send(t *testing.T, env command.Envelope) command.Envelope {
	t.Helper()
	u.r.Handle(cmdlink.CommandTopic("veh-1"), sign(t, env, u.keys.priv))
	return env
}

func TestExecutorOutcomes(t *testing.T) {
	u := newUnit(t, func(c *cmdlink.Config) { c.ExecTimeout = time.Second; c.MaxResponse = 4 << 10 })
	u.r.Start()
	cases := []struct {
		fail, big string
		code      command.Code
		msg       string
	}{
		{"", "", command.CodeOK, ""},
		{"bad", "", command.CodeBadArgs, "argument fail=bad is bad"},
		{"yes", "", command.CodeFailed, "backend busy"},
		{"panic", "", command.CodeFailed, "executor bug"},
		{"ctx", "", command.CodeFailed, "timed out after 1s"},
		{"notjson", "", command.CodeFailed, "not JSON"},
		{"", "8000", command.CodeFailed, "does not fit in a response"},
		{"", "100", command.CodeOK, ""},
	}
	for _, c := range cases {
		args := map[string]string{}
		if c.fail != "" {
			args["fail"] = c.fail
		}
		if c.big != "" {
			args["big"] = c.big
		}
		env := u.send(t, envelope("veh-1", command.Status, args))
		p := u.pub.next(t)
		if p.topic != cmdlink.ResponseTopic("veh-1") || p.resp.CorrelationID != env.CorrelationID || p.resp.Code != c.code ||
			p.resp.OK != (c.code == command.CodeOK) || !strings.Contains(p.resp.Message, c.msg) {
			t.Errorf("fail=%q big=%q: %s %+v, want code %s, message containing %q", c.fail, c.big, p.topic, p.resp, c.code, c.msg)
		}
		if c.code == command.CodeOK && !strings.Contains(string(p.resp.Result), `"vehicle":"veh-1"`) && c.big == "" {
			t.Errorf("result %s", p.resp.Result)
		}
		ev := u.ev.last(t)
		if !ev.Accepted || ev.Reason != "" || ev.Code != c.code || ev.CorrelationID != env.CorrelationID || ev.Command != command.Status || ev.KeyID != u.keys.id {
			t.Errorf("fail=%q: event %+v", c.fail, ev)
		}
	}
	s := u.r.Stats()
	if s.Received != 8 || s.Accepted != 8 || s.Executed != 2 || s.BadArgs != 1 || s.Failed != 5 || s.TimedOut != 1 || s.RejectedTotal() != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A command whose executor ignores its context is answered at the
// timeout, and the next waits until the executor has returned.
func TestExecTimeoutAnswersAndSerialises(t *testing.T) {
	u := newUnit(t, func(c *cmdlink.Config) { c.ExecTimeout = time.Second })
	u.r.Start()
	first := u.send(t, envelope("veh-1", command.Status, map[string]string{"fail": "block"}))
	p := u.pub.next(t)
	if p.resp.CorrelationID != first.CorrelationID || p.resp.Code != command.CodeFailed || !strings.Contains(p.resp.Message, "may still complete") {
		t.Fatalf("%+v", p.resp)
	}
	second := u.send(t, envelope("veh-1", command.Status, nil))
	u.pub.none(t, 300*time.Millisecond)
	if n := len(u.exec.executed()); n != 1 {
		t.Fatalf("%d executions while the first still runs", n)
	}
	u.exec.unblock()
	p = u.pub.next(t)
	if p.resp.CorrelationID != second.CorrelationID || !p.resp.OK {
		t.Errorf("%+v", p.resp)
	}
	if s := u.r.Stats(); s.TimedOut != 1 || s.Failed != 1 || s.Executed != 1 {
		t.Errorf("stats %+v", s)
	}
}

// Handle never blocks: with the worker not started, a full queue drops.
func TestQueueFullDrops(t *testing.T) {
	u := newUnit(t, func(c *cmdlink.Config) { c.QueueLen = 2 })
	var sent []command.Envelope
	for range 5 {
		sent = append(sent, u.send(t, envelope("veh-1", command.Status, nil)))
	}
	s := u.r.Stats()
	if s.Received != 5 || s.Dropped != 3 || s.Queued != 2 || s.Accepted != 0 {
		t.Fatalf("stats before start %+v", s)
	}
	u.r.Start()
	// The two queued run; the next two, which found the queue full, are
	// answered busy (the fifth found the busy queue full too).
	got := map[string]command.Code{}
	for range 4 {
		p := u.pub.next(t)
		got[p.resp.CorrelationID] = p.resp.Code
	}
	want := map[string]command.Code{
		sent[0].CorrelationID: command.CodeOK, sent[1].CorrelationID: command.CodeOK,
		sent[2].CorrelationID: command.CodeBusy, sent[3].CorrelationID: command.CodeBusy,
	}
	for id, code := range want {
		if got[id] != code {
			t.Errorf("%s answered %q, want %q", id, got[id], code)
		}
	}
	u.pub.none(t, 200*time.Millisecond)
	if s := u.r.Stats(); s.Executed != 2 || s.Dropped != 3 || s.Busy != 2 || s.Queued != 0 {
		t.Errorf("stats %+v", s)
	}
	if n := len(u.ev.all()); n != 4 {
		t.Errorf("%d events, want 4 (two executed, two busy)", n)
	}
	if n := len(u.exec.executed()); n != 2 {
		t.Errorf("%d executed, want 2", n)
	}
	// A busy answer spends no nonce: the same envelope runs when sent
	// again.
	u.r.Handle(cmdlink.CommandTopic("veh-1"), sign(t, sent[2], u.keys.priv))
	if p := u.pub.next(t); p.resp.CorrelationID != sent[2].CorrelationID || !p.resp.OK {
		t.Errorf("resent after busy: %+v", p.resp)
	}
}

// Messages on another vehicle's topic are refused without reaching the
// verifier, whatever their target; the nonce stays unspent.
func TestForeignTopic(t *testing.T) {
	u := newUnit(t, nil)
	u.r.Start()
	forOther := envelope("veh-2", command.Status, nil)
	forMe := envelope("veh-1", command.Status, nil)
	rawMe := sign(t, forMe, u.keys.priv)
	u.r.Handle(cmdlink.CommandTopic("veh-2"), sign(t, forOther, u.keys.priv))
	u.r.Handle(cmdlink.CommandTopic("veh-2"), rawMe)
	u.r.Handle("vigil/v1/veh-1/cmd/extra", rawMe)
	for _, want := range []string{forOther.CorrelationID, forMe.CorrelationID, forMe.CorrelationID} {
		p := u.pub.next(t)
		if p.resp.Code != command.CodeRejected || p.resp.CorrelationID != want || !strings.HasPrefix(p.resp.Message, "wrong_target: ") {
			t.Errorf("%+v", p.resp)
		}
	}
	if n := len(u.exec.executed()); n != 0 {
		t.Fatalf("%d executed", n)
	}
	// On its own topic the same envelope passes: its nonce was not spent.
	u.r.Handle(cmdlink.CommandTopic("veh-1"), rawMe)
	if p := u.pub.next(t); !p.resp.OK {
		t.Errorf("%+v", p.resp)
	}
	if s := u.r.Stats(); s.Rejected[cmdlink.ReasonWrongTarget] != 3 || s.Executed != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestPublishRetries(t *testing.T) {
	u := newUnit(t, func(c *cmdlink.Config) { c.PublishAttempts = 3 })
	u.r.Start()
	u.pub.failures.Store(2)
	env := u.send(t, envelope("veh-1", command.Status, nil))
	if p := u.pub.next(t); p.resp.CorrelationID != env.CorrelationID || u.pub.calls.Load() != 3 {
		t.Errorf("%+v after %d calls", p.resp, u.pub.calls.Load())
	}
	u.pub.failures.Store(3)
	u.send(t, envelope("veh-1", command.Status, nil))
	deadline := time.Now().Add(20 * time.Second)
	for u.r.Stats().PublishErrors == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := u.r.Stats(); s.PublishErrors != 1 || s.Executed != 2 || u.pub.calls.Load() != 6 {
		t.Errorf("stats %+v, %d calls", s, u.pub.calls.Load())
	}
}

func TestCloseAbandonsQueued(t *testing.T) {
	u := newUnit(t, func(c *cmdlink.Config) { c.ExecTimeout = 10 * time.Second })
	u.r.Start()
	u.send(t, envelope("veh-1", command.Status, map[string]string{"fail": "block"}))
	<-u.exec.running
	u.send(t, envelope("veh-1", command.Status, nil))
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closed <- u.r.Close(ctx)
	}()
	u.pub.none(t, 100*time.Millisecond) // Close waits for the command in progress
	u.exec.unblock()
	if p := u.pub.next(t); !p.resp.OK {
		t.Errorf("the command in progress: %+v", p.resp)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	u.send(t, envelope("veh-1", command.Status, nil))
	u.pub.none(t, 100*time.Millisecond)
	if s := u.r.Stats(); s.Accepted != 1 || s.Dropped != 1 || s.Received != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestCloseCancelsAtDeadline(t *testing.T) {
	u := newUnit(t, func(c *cmdlink.Config) { c.ExecTimeout = time.Minute })
	u.r.Start()
	u.send(t, envelope("veh-1", command.Status, map[string]string{"fail": "ctx"}))
	<-u.exec.running
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := u.r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v", err)
	}
	if p := u.pub.next(t); p.resp.Code != command.CodeFailed || !strings.Contains(p.resp.Message, "closing") {
		t.Errorf("%+v", p.resp)
	}
}

func TestClassify(t *testing.T) {
	want := map[error]cmdlink.Reason{
		command.ErrMalformed: cmdlink.ReasonMalformed, command.ErrUnsigned: cmdlink.ReasonUnsigned,
		command.ErrUnknownKey: cmdlink.ReasonUnknownKey, command.ErrBadSignature: cmdlink.ReasonBadSignature,
		command.ErrExpired: cmdlink.ReasonExpired, command.ErrNotYetValid: cmdlink.ReasonNotYetValid,
		command.ErrLifetimeTooLong: cmdlink.ReasonLifetimeTooLong, command.ErrWrongTarget: cmdlink.ReasonWrongTarget,
		command.ErrReplayed: cmdlink.ReasonReplayed, command.ErrUnknownCommand: cmdlink.ReasonUnknownCommand,
		command.ErrNonceStore: cmdlink.ReasonNonceStore, command.ErrUnsafeWhileMoving: cmdlink.ReasonUnsafeWhileMoving,
		errors.New("something else"): cmdlink.ReasonMalformed,
	}
	seen := map[cmdlink.Reason]bool{}
	for err, r := range want {
		if got := cmdlink.Classify(fmt.Errorf("wrapped: %w", err)); got != r {
			t.Errorf("%v: %s, want %s", err, got, r)
		}
		seen[r] = true
	}
	if len(seen) != len(cmdlink.Reasons) {
		t.Errorf("%d classes covered, %d listed", len(seen), len(cmdlink.Reasons))
	}
	if !errors.Is(fmt.Errorf("x: %w", cmdlink.BadArgs("level %q", "loud")), cmdlink.ErrBadArgs) || cmdlink.BadArgs("a %d", 1).Error() != "a 1" {
		t.Error("BadArgs")
	}
}

func TestNewReceiverRefuses(t *testing.T) {
	k := newKeys(t)
	v := newVerifier(t, "veh-1", k.pub, nil)
	ok := cmdlink.Config{Vehicle: "veh-1", Verifier: v, Exec: newExec("veh-1"), Moving: func() bool { return true },
		Publish: func(string, []byte) error { return nil }}
	edits := map[string]func(*cmdlink.Config){
		"vehicle":  func(c *cmdlink.Config) { c.Vehicle = "veh/1" },
		"all":      func(c *cmdlink.Config) { c.Vehicle = "all" },
		"fleet":    func(c *cmdlink.Config) { c.Vehicle = "fleet" },
		"Verifier": func(c *cmdlink.Config) { c.Verifier = nil },
		"Executor": func(c *cmdlink.Config) { c.Exec = nil },
		"Moving":   func(c *cmdlink.Config) { c.Moving = nil },
		"Publish":  func(c *cmdlink.Config) { c.Publish = nil },
	}
	for want, edit := range edits {
		c := ok
		edit(&c)
		if _, err := cmdlink.NewReceiver(c); err == nil || !strings.Contains(err.Error(), want) && want != "all" && want != "fleet" {
			t.Errorf("%s: %v", want, err)
		}
	}
	r, err := cmdlink.NewReceiver(ok)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Topics(); len(got) != 2 || got[0] != "vigil/v1/veh-1/cmd" || got[1] != "vigil/v1/fleet/cmd" {
		t.Errorf("topics %v", got)
	}
}

func TestTopics(t *testing.T) {
	if cmdlink.CommandTopic("v") != "vigil/v1/v/cmd" || cmdlink.ResponseTopic("v") != "vigil/v1/v/cmd/res" ||
		cmdlink.TargetTopic("all") != cmdlink.FleetCommandTopic || cmdlink.TargetTopic("v") != "vigil/v1/v/cmd" {
		t.Error("topics")
	}
	for topic, want := range map[string]string{
		"vigil/v1/veh-1/cmd/res": "veh-1", "vigil/v1/fleet/cmd/res": "", "vigil/v1/a/b/cmd/res": "",
		"vigil/v1/veh-1/cmd": "", "vigil/v2/veh-1/cmd/res": "",
	} {
		if got, ok := cmdlink.VehicleFromResponseTopic(topic); got != want || ok != (want != "") {
			t.Errorf("%s: %q %v", topic, got, ok)
		}
	}
	if v, ok := cmdlink.VehicleFromStatusTopic("vigil/v1/veh-1/status"); !ok || v != "veh-1" {
		t.Error("status topic")
	}
}
