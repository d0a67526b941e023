package cmdlink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// TestFloodKeepsValidCommands floods a vehicle's command topic through
// Mosquitto with 2,000 messages as fast as one client publishes them —
// forged signatures, unknown keys, expired envelopes, replays and
// garbage — with eleven valid commands of two operators' keys among
// them. The receiver is wired as vigild wires it: on the uploader's
// connection, nonces in the vehicle's store, the broker's default
// in-flight window of 20. Every valid command must be executed once and
// answered ok; every other message counted by its class, and answered
// only as the answer rate allows.
func TestFloodKeepsValidCommands(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{Extra: []string{"max_inflight_messages 20"}})
	ka, kb := newKeys(t), newKeys(t)
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	t.Cleanup(func() { st.Close(context.Background()) })
	nonces, err := command.NewStateNonces(st, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	exec := newExec("veh-1")
	ev := &events{}
	r := onUploader(t, b, st, cmdlink.Config{
		Vehicle: "veh-1", Verifier: verifierFor(t, "veh-1", nonces, time.Now, ka.pub, kb.pub), Exec: exec,
		Moving: func() bool { return true }, // status runs while moving
		Record: ev.record, Log: logger(t),
	})

	// The operator's side: responses by correlation id.
	var mu sync.Mutex
	answers := map[string][]command.Response{}
	var nAnswers int
	op := b.Client(t, "operator", nil)
	if err := mqtttest.Subscribe(op, cmdlink.ResponseTopic("veh-1"), func(_ mqtt.Client, m mqtt.Message) {
		resp, err := command.DecodeResponse(m.Payload())
		if err != nil {
			t.Errorf("response %q: %v", m.Payload(), err)
			return
		}
		mu.Lock()
		answers[resp.CorrelationID] = append(answers[resp.CorrelationID], resp)
		nAnswers++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, b.URL())

	// One valid command before the flood, whose copies the flood
	// replays.
	old := envelope("veh-1", command.Status, nil)
	oldRaw := sign(t, old, ka.priv)
	if err := mqtttest.Publish(op, cmdlink.CommandTopic("veh-1"), oldRaw, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the command before the flood", func() bool { return r.Stats().Executed == 1 })

	const n = 2000
	now := time.Now().Truncate(time.Millisecond)
	var (
		msgs  [][]byte
		valid []command.Envelope
		want  = map[cmdlink.Reason]uint64{}
	)
	for i := range n {
		switch {
		case i%180 == 90 && len(valid) < 11:
			// Valid: status in the middle of the flood, the others
			// log-level, alternately from the two keys.
			k, c, args := ka, command.LogLevel, map[string]string{"level": "info"}
			if len(valid)%2 == 1 {
				k = kb
			}
			if len(valid) == 5 {
				c, args = command.Status, nil
			}
			e := envelope("veh-1", c, args)
			valid = append(valid, e)
			msgs = append(msgs, sign(t, e, k.priv))
			continue
		}
		e := envelope("veh-1", command.Policy, map[string]string{"policy": "cold"})
		switch i % 5 {
		case 0: // forged: a trusted key's id, another key's signature
			var s command.SignedEnvelope
			json.Unmarshal(sign(t, e, ka.priv), &s)
			s.Payload = bytes.Replace(s.Payload, []byte("cold"), []byte("warm"), 1)
			raw, _ := s.Marshal()
			msgs = append(msgs, raw)
			want[cmdlink.ReasonBadSignature]++
		case 1: // a key the vehicle does not trust
			msgs = append(msgs, sign(t, e, ka.other))
			want[cmdlink.ReasonUnknownKey]++
		case 2: // expired, correctly signed
			e.IssuedAt, e.Expires = now.Add(-time.Hour), now.Add(-time.Minute)
			msgs = append(msgs, sign(t, e, kb.priv))
			want[cmdlink.ReasonExpired]++
		case 3: // replayed: the command run before the flood
			msgs = append(msgs, oldRaw)
			want[cmdlink.ReasonReplayed]++
		case 4:
			msgs = append(msgs, []byte(`{"v":1,"payload":"bm90IGpzb24=","sig":""}`))
			want[cmdlink.ReasonMalformed]++
		}
	}
	if len(valid) != 11 {
		t.Fatalf("%d valid commands in the flood", len(valid))
	}

	flooder := b.Client(t, "flooder", nil)
	start := time.Now()
	toks := make([]mqtt.Token, 0, n)
	for _, m := range msgs {
		toks = append(toks, flooder.Publish(cmdlink.CommandTopic("veh-1"), 1, false, m))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("flood publish: %v", tok.Error())
		}
	}
	published := time.Since(start)
	waitFor(t, "every message of the flood checked", func() bool {
		s := r.Stats()
		return s.RejectedTotal()+s.Accepted+s.Dropped+uint64(s.Queued) == n+1
	})
	handled := time.Since(start)
	waitFor(t, "every valid command answered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range valid {
			if !hasOK(answers[e.CorrelationID]) {
				return false
			}
		}
		return true
	})

	ex := exec.executed()
	runs := map[string]int{}
	for _, e := range ex {
		runs[e.CorrelationID]++
	}
	for i, e := range valid {
		if runs[e.CorrelationID] != 1 {
			t.Errorf("valid command %d (%s) executed %d times", i, e.Command, runs[e.CorrelationID])
		}
	}
	if len(ex) != 12 {
		t.Errorf("%d executions, want 12 (one before the flood, eleven in it)", len(ex))
	}
	s := r.Stats()
	for reason, w := range want {
		if s.Rejected[reason] != w {
			t.Errorf("rejected %s: %d, want %d", reason, s.Rejected[reason], w)
		}
	}
	if got, w := s.RejectedTotal(), uint64(n-len(valid)); got != w {
		t.Errorf("rejected %d in all, want %d (%v)", got, w, s.Rejected)
	}
	if s.Accepted != 12 || s.Executed != 12 || s.Dropped != 0 || s.Queued != 0 {
		t.Errorf("stats %+v", s)
	}
	// Answers: every valid command's, and the refusals the rate allowed.
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	got := nAnswers
	mu.Unlock()
	answered := s.RejectedTotal() - s.Unanswered
	if uint64(got) != 1+uint64(len(valid))+answered {
		t.Errorf("%d responses, want %d: %d executed, %d refusals answered", got, 1+len(valid)+int(answered), 1+len(valid), answered)
	}
	if answered > 20+uint64(10*handled.Seconds())+1 {
		t.Errorf("%d refusals answered in %v: more than the rate allows", answered, handled)
	}
	t.Logf("flood of %d published in %v, handled in %v: %d valid executed and answered ok; refused %v (%d answered, %d counted only); %d events recorded",
		n, published.Round(time.Millisecond), handled.Round(time.Millisecond), len(valid), s.Rejected, answered, s.Unanswered, len(ev.all()))
}

func hasOK(rs []command.Response) bool {
	for _, r := range rs {
		if r.OK {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitOnline waits for veh-1's retained status "online": the uploader
// subscribes before it publishes it.
func waitOnline(t *testing.T, broker string) {
	t.Helper()
	s := dialSender(t, broker)
	waitFor(t, "veh-1 online", func() bool {
		vs, _ := s.Vehicles(waitCtx(t), 0)
		return len(vs) == 1 && vs[0].Online
	})
}
