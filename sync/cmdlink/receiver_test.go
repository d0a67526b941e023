package cmdlink_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-av/vigil/internal/clock"
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

func (u *unit) start(t *testing.T) {
	t.Helper()
	if err := u.r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (u *unit) send(t *testing.T, env command.Envelope) command.Envelope {
	t.Helper()
	u.r.Handle(cmdlink.CommandTopic("veh-1"), sign(t, env, u.keys.priv))
	return env
}

func TestExecutorOutcomes(t *testing.T) {
	u := newUnit(t, func(c *cmdlink.Config) { c.ExecTimeout = time.Second; c.MaxResponse = 4 << 10 })
	u.start(t)
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
	u.start(t)
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

// responses takes n responses, by correlation id.
func (c *capture) responses(t *testing.T, n int) map[string][]command.Response {
	t.Helper()
	out := map[string][]command.Response{}
	for range n {
		p := c.next(t)
		out[p.resp.CorrelationID] = append(out[p.resp.CorrelationID], p.resp)
	}
	return out
}

// The queue holds verified commands only: with the worker not started, a
// full queue turns the next ones away, answered busy, nonces unspent.
func TestQueueFullBusy(t *testing.T) {
	u := newUnit(t, func(c *cmdlink.Config) { c.QueueLen = 2; c.KeyBurst = 100 })
	var sent []command.Envelope
	for range 5 {
		sent = append(sent, u.send(t, envelope("veh-1", command.Status, nil)))
	}
	s := u.r.Stats()
	if s.Received != 5 || s.Dropped != 3 || s.Busy != 3 || s.Queued != 2 || s.Accepted != 0 || s.OverKeyRate != 0 {
		t.Fatalf("stats before start %+v", s)
	}
	u.start(t)
	got := u.pub.responses(t, 5)
	for i, env := range sent {
		want := command.CodeOK
		if i >= 2 {
			want = command.CodeBusy
		}
		if r := got[env.CorrelationID]; len(r) != 1 || r[0].Code != want {
			t.Errorf("command %d answered %+v, want %s", i, r, want)
		}
	}
	u.pub.none(t, 200*time.Millisecond)
	if s := u.r.Stats(); s.Executed != 2 || s.Dropped != 3 || s.Busy != 3 || s.Queued != 0 || s.Unanswered != 0 {
		t.Errorf("stats %+v", s)
	}
	if n := len(u.ev.all()); n != 5 {
		t.Errorf("%d events, want 5 (two executed, three busy)", n)
	}
	// A busy answer spends no nonce: the same envelope runs when sent
	// again.
	u.r.Handle(cmdlink.CommandTopic("veh-1"), sign(t, sent[2], u.keys.priv))
	if p := u.pub.next(t); p.resp.CorrelationID != sent[2].CorrelationID || !p.resp.OK {
		t.Errorf("resent after busy: %+v", p.resp)
	}
}

// One key cannot fill the queue: beyond its burst its commands are
// answered busy, and another key's still run.
func TestKeyRate(t *testing.T) {
	ka := newKeys(t)
	_, privB, idB, err := command.KeyGen(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := newUnit(t, func(c *cmdlink.Config) {
		c.Verifier = verifierFor(t, "veh-1", nil, time.Now, ka.pub, privB.Public().(ed25519.PublicKey))
		c.KeyBurst = 3
		c.Clock = clock.NewFake(time.Now()) // it stands still: no token comes back
	})
	u.keys = ka
	var a, b []command.Envelope
	for range 5 {
		a = append(a, u.send(t, envelope("veh-1", command.Status, nil)))
	}
	for range 2 {
		env := envelope("veh-1", command.Status, nil)
		u.r.Handle(cmdlink.CommandTopic("veh-1"), sign(t, env, privB))
		b = append(b, env)
	}
	if s := u.r.Stats(); s.Queued != 5 || s.Dropped != 2 || s.OverKeyRate != 2 || s.Busy != 2 {
		t.Fatalf("stats %+v", s)
	}
	u.start(t)
	got := u.pub.responses(t, 7)
	for i, env := range append(a, b...) {
		want := command.CodeOK
		if i == 3 || i == 4 {
			want = command.CodeBusy
		}
		if r := got[env.CorrelationID]; len(r) != 1 || r[0].Code != want {
			t.Errorf("command %d answered %+v, want %s", i, r, want)
		} else if want == command.CodeBusy && !strings.Contains(r[0].Message, u.keys.id) {
			t.Errorf("busy answer %q does not name the key", r[0].Message)
		}
	}
	if ex := u.exec.executed(); len(ex) != 5 || ex[3].KeyID != idB || ex[4].KeyID != idB {
		t.Errorf("executed %d: %+v", len(ex), ex)
	}
}

// Refusals are answered at a bounded rate; the rest are counted by class
// and not answered; a valid command among them runs and is answered.
func TestAnswerRate(t *testing.T) {
	clk := clock.NewFake(time.Now())
	u := newUnit(t, func(c *cmdlink.Config) { c.AnswerBurst = 5; c.AnswerRate = 10; c.Clock = clk })
	u.start(t)
	var valid command.Envelope
	for i := range 20 {
		if i == 10 {
			valid = u.send(t, envelope("veh-1", command.Status, nil))
		}
		u.r.Handle(cmdlink.CommandTopic("veh-1"), sign(t, envelope("veh-1", command.Status, nil), u.keys.other))
	}
	got := u.pub.responses(t, 6)
	if r := got[valid.CorrelationID]; len(r) != 1 || !r[0].OK {
		t.Errorf("the valid command: %+v", r)
	}
	u.pub.none(t, 200*time.Millisecond)
	s := u.r.Stats()
	if s.Rejected[cmdlink.ReasonUnknownKey] != 20 || s.Unanswered != 15 || s.Executed != 1 {
		t.Errorf("stats %+v", s)
	}
	if n := len(u.ev.all()); n != 6 {
		t.Errorf("%d events, want the 6 answered", n)
	}
	// A second later: 10 tokens more, but no more than the burst (5).
	clk.Advance(time.Second)
	for range 8 {
		u.r.Handle(cmdlink.CommandTopic("veh-1"), []byte("garbage"))
	}
	u.pub.responses(t, 5)
	u.pub.none(t, 200*time.Millisecond)
	if s := u.r.Stats(); s.Rejected[cmdlink.ReasonMalformed] != 8 || s.Unanswered != 18 {
		t.Errorf("stats %+v", s)
	}
}

// The same envelope twice: the second copy is refused as replayed on
// arrival while the first is queued, and afterwards because its nonce is
// spent.
func TestReplayWhileQueued(t *testing.T) {
	u := newUnit(t, nil)
	env := envelope("veh-1", command.Status, nil)
	raw := sign(t, env, u.keys.priv)
	u.r.Handle(cmdlink.CommandTopic("veh-1"), raw)
	u.r.Handle(cmdlink.FleetCommandTopic, raw)
	if s := u.r.Stats(); s.Queued != 1 || s.Rejected[cmdlink.ReasonReplayed] != 1 {
		t.Fatalf("stats %+v", s)
	}
	u.start(t)
	got := u.pub.responses(t, 2)
	if r := got[env.CorrelationID]; len(r) != 2 || r[0].Code == r[1].Code {
		t.Fatalf("answers %+v, want one ok and one rejected", r)
	}
	u.r.Handle(cmdlink.CommandTopic("veh-1"), raw)
	if p := u.pub.next(t); p.resp.Code != command.CodeRejected || !strings.HasPrefix(p.resp.Message, "replayed: ") {
		t.Errorf("%+v", p.resp)
	}
	if n := len(u.exec.executed()); n != 1 {
		t.Errorf("%d executed", n)
	}
}

// A command checked on arrival that expires while it waits is refused
// when taken: the nonce is spent only then, and the expiry checked again.
func TestExpiredWhileQueued(t *testing.T) {
	clk := clock.NewFake(time.Now())
	k := newKeys(t)
	u := newUnit(t, func(c *cmdlink.Config) { c.Verifier = verifierFor(t, "veh-1", nil, clk.Now, k.pub) })
	u.keys = k
	env := envelope("veh-1", command.Status, nil)
	env.IssuedAt, env.Expires = clk.Now().Truncate(time.Millisecond), clk.Now().Add(time.Minute).Truncate(time.Millisecond)
	u.send(t, env)
	if s := u.r.Stats(); s.Queued != 1 {
		t.Fatalf("stats %+v", s)
	}
	clk.Advance(2 * time.Minute)
	u.start(t)
	if p := u.pub.next(t); p.resp.CorrelationID != env.CorrelationID || !strings.HasPrefix(p.resp.Message, "expired: ") {
		t.Errorf("%+v", p.resp)
	}
	if n := len(u.exec.executed()); n != 0 {
		t.Errorf("%d executed", n)
	}
}

// Messages on another vehicle's topic are refused without reaching the
// verifier, whatever their target; the nonce stays unspent.
func TestForeignTopic(t *testing.T) {
	u := newUnit(t, nil)
	u.start(t)
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
	u.start(t)
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
	u.start(t)
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
	u.start(t)
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
		cmdlink.ErrIssuedBeforeRestore: cmdlink.ReasonIssuedBeforeRestore,
		errors.New("something else"):   cmdlink.ReasonMalformed,
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
