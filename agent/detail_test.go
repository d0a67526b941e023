package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/inference"
)

// TestEveryNoResultHasADetail: each reason the router gives without a
// detail gets one, and the overload detail tells busy backends from the
// request limit.
func TestEveryNoResultHasADetail(t *testing.T) {
	for r := inference.ReasonMRM; r <= inference.ReasonClosed; r++ {
		if d := noResultDetail(&inference.Answer{Reason: r}); d == "" || d == detailUnspecified {
			t.Errorf("%s: detail %q", r, d)
		}
	}
	busy := &inference.Answer{Reason: inference.ReasonOverloaded}
	busy.Backends[0].Outcome = inference.OutcomeBusy
	if d := noResultDetail(busy); d != detailAllBusy {
		t.Errorf("busy backends: %q", d)
	}
	if d := noResultDetail(&inference.Answer{Reason: inference.ReasonOverloaded}); d != detailTooMany {
		t.Errorf("request limit: %q", d)
	}
}

// TestDaemonNoResultDetails: through the real daemon, the NO_RESULT answers
// a tester saw without a detail — a budget below the answer margin, every
// backend failing, overload from pipelining — now carry one.
func TestDaemonNoResultDetails(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Drills.Allowed = true
	cfg.Router.Requests = 1 // overload within reach of a few callers
	_, c := startDaemon(t, cfg)
	conns := []*client.Client{c}
	for range 3 {
		cc, err := client.Dial(cfg.Socket.Path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		conns = append(conns, cc)
	}

	seen := map[client.Reason]int{}
	check := func(resp *client.InferResponse) {
		t.Helper()
		if resp.OK() {
			return
		}
		seen[resp.Reason]++
		if resp.Detail == "" {
			t.Errorf("NO_RESULT %v without a detail: %+v", resp.Reason, resp)
		}
	}
	// A budget of 1 ms is inside the 2 ms answer margin.
	check(infer(t, c, time.Millisecond))

	// Pipelining well beyond the sessions and the router's limit; bursts
	// until one overlaps (a loaded machine may serve a burst one by one).
	frame := randomFrame()
	for try := 0; try < 10 && seen[client.ReasonOverloaded] == 0; try++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var resps []*client.InferResponse
		for i := range 32 {
			c := conns[i%len(conns)]
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				resp, err := c.Infer(ctx, &client.InferRequest{Budget: 100 * time.Millisecond, Inputs: frame})
				if err != nil {
					t.Errorf("Infer: %v", err)
					return
				}
				mu.Lock()
				resps = append(resps, resp)
				mu.Unlock()
			})
		}
		wg.Wait()
		for _, r := range resps {
			check(r)
		}
	}

	// Every rung errs.
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []client.Backend{client.Primary, client.Shadow, client.Degraded} {
		if err := control(t, c, client.ControlRequest{Op: client.OpDrillFault, Backend: b, FaultKind: "error"}); err != nil {
			t.Fatal(err)
		}
	}
	// The one pooled request may still be held by the last burst's lanes
	// for a moment: ask again while the answer is OVERLOADED.
	for try := 0; try < 50; try++ {
		resp := infer(t, c, 100*time.Millisecond)
		check(resp)
		if resp.Reason != client.ReasonOverloaded {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if seen[client.ReasonOverloaded] == 0 {
		t.Errorf("bursts of 32 requests with router.requests 1: no OVERLOADED (%v)", seen)
	}
	if seen[client.ReasonDeadlinePassedOnArrival] == 0 {
		t.Errorf("the 1 ms budget was answered %v", seen)
	}
	if seen[client.ReasonAllBackendsFailed]+seen[client.ReasonMRM] == 0 {
		t.Errorf("every rung erring gave no NO_RESULT: %v", seen)
	}
	t.Logf("NO_RESULT reasons seen: %v", seen)
}
