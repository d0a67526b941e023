package deploy

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// randomConfig has short timeouts so that random streams reach them.
func randomConfig() Config {
	c := DefaultConfig()
	c.Timeouts = Timeouts{
		Downloading: time.Minute, Verifying: 20 * time.Second, Verified: 20 * time.Second,
		Staged: 20 * time.Second, Trial: time.Minute, Promoting: 20 * time.Second,
		Promoted: time.Minute, Committing: 20 * time.Second, RollingBack: 20 * time.Second,
		Parked: time.Minute,
	}
	c.TrialMinRequests, c.TrialMinDuration = 3, 5*time.Second
	c.TrialMaxErrors, c.TrialMaxDivergence = 1, 0.2
	c.GateRequests, c.GateDuration = 5, 5*time.Second
	c.MaxCrashes = 1
	return c
}

// coverage counts what random streams reached, so that a test can tell
// that they exercise the machine.
type coverage struct {
	outcomes map[State]int
	actions  map[string]int
}

// TestRandomInvariants steps random event streams and checks the
// invariants after every step (invariants.step), and at the end of each
// stream that time alone brings every deployment to an outcome.
func TestRandomInvariants(t *testing.T) {
	cov := coverage{outcomes: map[State]int{}, actions: map[string]int{}}
	for seed := uint64(1); seed <= 100; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7919))
		data := make([]byte, 3*600)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		runStream(t, data, &cov)
	}
	for s := Committed; s < numStates; s++ {
		if cov.outcomes[s] == 0 {
			t.Errorf("no stream reached %s: the streams do not exercise the machine", s)
		}
	}
	for _, a := range []string{"promote", "commit", "rollback", "reject", "start-newer"} {
		if cov.actions[a] == 0 {
			t.Errorf("no stream emitted %s", a)
		}
	}
	t.Logf("outcomes %v", cov.outcomes)
}

// FuzzDeployment runs the same checks on fuzzed event streams
// (go test -fuzz FuzzDeployment ./models/deploy/).
func FuzzDeployment(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 3, 0, 0, 5, 0, 0, 7, 0, 0, 9, 10})
	f.Add([]byte("\x17\x01\x00\x17\x09\x00\x15\x02\x00\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		runStream(t, data, &coverage{outcomes: map[State]int{}, actions: map[string]int{}})
	})
}

// runStream decodes data three bytes an event (kind, argument, time step
// in units of 20ms) and steps deployments through them: a deployment
// that asks for a newer one is followed by it.
func runStream(t *testing.T, data []byte, cov *coverage) {
	t.Helper()
	cfg := randomConfig()
	now := t0
	d, r, err := New(cfg, randomSpec(2, 0, now), now)
	if err != nil {
		t.Fatal(err)
	}
	inv := newInvariants(d)
	inv.checkNew(t, d, now, r)
	for i := 0; i+2 < len(data); i += 3 {
		kind, arg := data[i], data[i+1]
		now = now.Add(time.Duration(data[i+2]) * 20 * time.Millisecond)
		if !d.resumed && kind&1 == 0 {
			r = inv.step(t, d, now, Restarted{Slot: SlotPosition(arg % 4), Clean: arg&16 == 0})
		} else if kind%32 == 31 {
			d = restoreFor(t, d, cfg)
			if arg&1 == 0 { // sometimes the next event meets it unresumed
				continue
			}
			r = inv.step(t, d, now, Restarted{Slot: SlotPosition(arg >> 1 % 5), Clean: arg&16 == 0})
		} else {
			r = inv.step(t, d, now, randomEvent(d, kind, arg, now))
		}
		for _, a := range r.Actions {
			cov.actions[actionName(a)]++
			if n, ok := a.(StartNewer); ok {
				cov.outcomes[d.State()]++
				d, r, err = New(cfg, n.Spec, now)
				if err != nil {
					t.Fatalf("New(%v): %v", n.Spec, err)
				}
				inv = newInvariants(d)
				inv.checkNew(t, d, now, r)
				break
			}
		}
	}
	if !d.resumed {
		inv.step(t, d, now, Restarted{Slot: SlotActive})
	}
	for range 5 {
		now = now.Add(2 * time.Hour)
		inv.step(t, d, now, Tick{})
	}
	if !d.Done() {
		t.Fatalf("time alone did not end the deployment: %s", d.State())
	}
	cov.outcomes[d.State()]++
}

func restoreFor(t testing.TB, d *Deployment, cfg Config) *Deployment {
	b, err := d.Save().Encode()
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeSaved(b)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := Restore(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

func actionName(a Action) string {
	s := a.String()
	for i, c := range s {
		if c == ' ' || c == ':' {
			return s[:i]
		}
	}
	return s
}

func randomSpec(version uint64, arg byte, issued time.Time) Spec {
	return Spec{Role: "primary", Name: "pilot", Version: version, Hash: fmt.Sprintf("%064x", uint64(arg%4)+version*16),
		Issued: issued, ParkedOnly: arg&32 != 0, SkipTrial: arg&64 != 0}
}

// randomEvent makes an event of one byte of kind and one of argument. Half
// the kinds answer what the current state waits for, so that streams get
// far; the rest are any event, most of them refused.
func randomEvent(d *Deployment, kind, arg byte, now time.Time) Event {
	if kind < 128 {
		if ev := expectedEvent(d.State(), arg); ev != nil {
			return ev
		}
	}
	switch kind % 16 {
	case 0:
		return DownloadProgress{Have: int64(arg) - 10, Total: 200}
	case 1:
		return expectedEvent(Downloading, arg)
	case 2:
		return expectedEvent(Verifying, arg)
	case 3:
		return expectedEvent(Verified, arg)
	case 4:
		return expectedEvent(Staged, arg)
	case 5, 6:
		return expectedEvent(Trial, arg)
	case 7:
		return expectedEvent(Promoting, arg)
	case 8, 9:
		return expectedEvent(Promoted, arg)
	case 10:
		return expectedEvent(Committing, arg)
	case 11:
		return expectedEvent(RollingBack, arg)
	case 12:
		return Command{Op: CommandOp(arg % 3), Reason: "r"}
	case 13:
		spec := randomSpec(uint64(arg%4)+1, arg, d.Spec().Issued.Add(time.Duration(int(arg%5)-2)*time.Minute))
		if arg == 255 {
			spec.Role = "shadow"
		}
		return Newer{Spec: spec}
	case 14:
		return Motion{Parked: arg&1 == 1}
	}
	return Tick{}
}

// expectedEvent returns an answer state s waits for, chosen by arg.
func expectedEvent(s State, arg byte) Event {
	reason := fmt.Sprintf("reason %d", arg)
	switch s {
	case Downloading:
		return []Event{DownloadDone{}, DownloadDone{}, DownloadDone{}, DownloadFailed{Reason: reason},
			DownloadProgress{Have: int64(arg), Total: 255}, DownloadDone{}, DownloadDone{}, DownloadDone{}}[arg%8]
	case Verifying:
		if arg%9 == 0 {
			return VerifyRefused{Reason: reason}
		}
		if arg&1 == 1 {
			return VerifyDone{Tolerance: &Tolerance{Abs: float64(arg%3) - 0.5}}
		}
		return VerifyDone{}
	case Verified:
		if arg%9 == 0 {
			return InstallFailed{Reason: reason, Refused: arg&8 != 0}
		}
		return InstallDone{}
	case Staged:
		if arg%7 == 0 {
			return TrialStartFailed{Reason: reason}
		}
		return TrialStarted{}
	case Trial:
		return TrialSample{Outcome: Outcome(arg % 9 % 6), Within: arg%5 != 0,
			Latency: time.Duration(arg%40) * time.Millisecond, Budget: time.Duration(arg%4) * 11 * time.Millisecond}
	case Promoting:
		if arg%6 == 0 {
			return PromoteFailed{Reason: reason, Swapped: arg&8 != 0}
		}
		return PromoteDone{}
	case Promoted:
		switch arg % 16 {
		case 0:
			return WatchdogFailed{Reason: reason}
		case 1:
			return WatchdogSuspect{Reason: reason}
		}
		return Served{Requests: int(arg%4) - 1 + int(arg%3)}
	case Committing:
		if arg%6 == 0 {
			return CommitFailed{Reason: reason}
		}
		return CommitDone{}
	case RollingBack:
		if arg%6 == 0 {
			return RollbackFailed{Reason: reason}
		}
		return RollbackDone{}
	}
	return nil
}
