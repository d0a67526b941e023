package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// TestFleetCommandFlood floods vigild's command topic, over the mutually
// authenticated link with the fleet ACL, with 2,000 forged, unknown-key,
// expired and replayed commands and five valid status commands among
// them, while the supervisor streams frames at 30 Hz with a 33 ms
// deadline: every valid command runs and is answered ok, vigilctl
// status counts the flood by class, and inference keeps its deadlines.
func TestFleetCommandFlood(t *testing.T) {
	r := newCommandRig(t)
	_, c := startDaemon(t, r.cfg)
	r.waitOnline(c)
	// The operator's replay: a command run before the flood.
	ok, _ := r.send(r.priv, command.Status, nil)
	if !ok.OK {
		t.Fatalf("status before the flood: %+v", ok)
	}
	_, other, _, err := command.KeyGen(nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(env command.Envelope, key []byte) []byte {
		t.Helper()
		s, err := command.Sign(env, key)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := s.Marshal()
		return raw
	}
	envelope := func(c command.Command, args map[string]string) command.Envelope {
		n, _ := command.NewNonce(nil)
		now := time.Now().Truncate(time.Millisecond)
		return command.Envelope{Nonce: n, IssuedAt: now, Expires: now.Add(time.Minute), Target: r.vehicle, Command: c, Args: args,
			CorrelationID: cmdlink.NewCorrelationID()}
	}
	replayed := sign(envelope(command.LogLevel, map[string]string{"level": "warn"}), r.priv)

	const n = 2000
	var msgs [][]byte
	var valid []string
	for i := range n {
		if i%400 == 200 {
			e := envelope(command.Status, nil)
			valid = append(valid, e.CorrelationID)
			msgs = append(msgs, sign(e, r.priv))
			continue
		}
		e := envelope(command.Policy, map[string]string{"policy": "cold"})
		switch i % 4 {
		case 0:
			var s command.SignedEnvelope
			json.Unmarshal(sign(e, r.priv), &s)
			s.Payload = bytes.Replace(s.Payload, []byte("cold"), []byte("warm"), 1)
			raw, _ := s.Marshal()
			msgs = append(msgs, raw)
		case 1:
			msgs = append(msgs, sign(e, other))
		case 2:
			e.IssuedAt, e.Expires = e.IssuedAt.Add(-time.Hour), e.IssuedAt.Add(-time.Minute)
			msgs = append(msgs, sign(e, r.priv))
		case 3:
			msgs = append(msgs, replayed)
		}
	}
	// The envelope the flood replays runs first, once.
	op := r.broker.Client(t, "fleet-flooder", r.pki.ClientTLS("fleet"))
	var mu sync.Mutex
	answers := map[string][]command.Response{}
	if err := mqtttest.Subscribe(op, cmdlink.ResponseTopic(r.vehicle), func(_ mqtt.Client, m mqtt.Message) {
		if resp, err := command.DecodeResponse(m.Payload()); err == nil {
			mu.Lock()
			answers[resp.CorrelationID] = append(answers[resp.CorrelationID], resp)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := mqtttest.Publish(op, cmdlink.CommandTopic(r.vehicle), replayed, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the command to replay run", func() (bool, string) {
		cs := fetchStatus(t, c).Sync.Commands
		return cs.Executed == 2, ""
	})

	// The supervisor: a frame every 33 ms, each with a 33 ms deadline.
	before := fetchStatus(t, c)
	stop := make(chan struct{})
	var frames, notOK atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := c.Infer(ctx, &client.InferRequest{Budget: 33 * time.Millisecond, Inputs: randomFrame()})
			cancel()
			frames.Add(1)
			if err != nil || !resp.OK() {
				notOK.Add(1)
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	toks := make([]mqtt.Token, 0, n)
	for _, m := range msgs {
		toks = append(toks, op.Publish(cmdlink.CommandTopic(r.vehicle), 1, false, m))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("flood publish: %v", tok.Error())
		}
	}
	published := time.Since(start)
	waitFor(t, 30*time.Second, "every valid command answered", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range valid {
			if rs := answers[id]; len(rs) == 0 || !rs[0].OK {
				return false, id
			}
		}
		return true, ""
	})
	waitFor(t, 30*time.Second, "the flood counted", func() (bool, string) {
		cs := fetchStatus(t, c).Sync.Commands
		return cs.Received == n+2, ""
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done

	after := fetchStatus(t, c)
	cs := after.Sync.Commands
	want := map[string]uint64{"bad_signature": 500 - uint64(len(valid)), "unknown_key": 500, "expired": 500, "replayed": 500}
	for reason, w := range want {
		if cs.RejectedBy[reason] != w {
			t.Errorf("rejected %s: %d, want %d (%v)", reason, cs.RejectedBy[reason], w, cs.RejectedBy)
		}
	}
	if cs.Executed != 2+uint64(len(valid)) || cs.Rejected != n-uint64(len(valid)) {
		t.Errorf("commands: %+v", cs)
	}
	// Far more refusals than the answer rate allows: most are counted, not
	// answered, and the status says how many.
	if cs.Unanswered == 0 || cs.Unanswered >= cs.Rejected {
		t.Errorf("unanswered refusals %d of %d rejected", cs.Unanswered, cs.Rejected)
	}
	misses := after.Counters.DeadlineMisses - before.Counters.DeadlineMisses
	switch {
	case raceEnabled:
		// The flood's publisher, the broker and the instrumented
		// daemon share the machine's two cores: the deadlines are
		// checked without the race detector.
	case misses != 0 || notOK.Load() != 0:
		t.Errorf("%d of %d frames missed their deadline during the flood (%d not ok)", misses, frames.Load(), notOK.Load())
	}
	t.Logf("flood of %d published in %v; %d frames at 30 Hz, %d deadline misses, %d not ok; %d valid commands answered ok; refused %v",
		n, published.Round(time.Millisecond), frames.Load(), misses, notOK.Load(), len(valid), cs.RejectedBy)
}
