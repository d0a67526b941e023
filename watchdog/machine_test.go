package watchdog

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func newMachine(t testing.TB, mutate func(*Config)) *Machine {
	t.Helper()
	c := DefaultConfig()
	if mutate != nil {
		mutate(&c)
	}
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFlappingPrimary drives a primary that fails again as soon as it is
// back, for ten minutes, and checks the promise: no rolling minute
// sees more switches than the cap, and every fail-back came out of
// probation.
func TestFlappingPrimary(t *testing.T) {
	const limit = 4
	m := newMachine(t, func(c *Config) {
		c.MaxSwitchesPerMinute = limit
		c.MissThreshold = 1
		c.CoolDown = time.Second
		c.CanaryInterval = 100 * time.Millisecond
		c.CanaryCount = 3
		c.CanaryMinSpan = 200 * time.Millisecond
	})
	now := t0
	var switches []time.Time
	var lastSwitches uint64
	step := func(ev Event) Ready {
		r := m.Step(now, ev)
		for _, tr := range r.Transitions {
			if tr.To == Healthy && tr.From != Probation && tr.From != Suspect {
				t.Fatalf("%v: %s reached healthy from %s", now.Sub(t0), tr.Backend, tr.From)
			}
		}
		if c := m.Counters(); c.Switches != lastSwitches {
			for range c.Switches - lastSwitches {
				switches = append(switches, now)
			}
			lastSwitches = c.Switches
		}
		return r
	}
	for now.Before(t0.Add(10 * time.Minute)) {
		now = now.Add(50 * time.Millisecond)
		r := step(Tick{})
		for _, c := range r.Canaries {
			step(RunResult{Backend: c.Backend, Latency: 5 * ms, Canary: true})
		}
		if m.State(Primary) == Healthy {
			step(RunResult{Backend: Primary, Err: RunDeadline, Latency: m.cfg.Deadline})
		}
	}
	if got := m.Counters().Failbacks; got < 10 {
		t.Fatalf("only %d fail-backs in ten minutes; the test does not flap", got)
	}
	for i, s := range switches {
		n := 0
		for _, u := range switches[:i+1] {
			if s.Sub(u) < time.Minute {
				n++
			}
		}
		if n > limit {
			t.Fatalf("%d switches in the minute before %v (cap %d)", n, s.Sub(t0), limit)
		}
	}
}

// TestStepAllocations: the steady state (good results and ticks, nothing
// changing) allocates nothing.
func TestStepAllocations(t *testing.T) {
	m := newMachine(t, nil)
	now := t0
	for range 40 {
		m.Step(now, RunResult{Backend: Primary, Latency: 5 * ms})
	}
	// Boxed once: the shell boxes events on its own goroutine.
	var good Event = RequestResult{NumRuns: 2, Runs: [NumBackends]RunResult{
		{Backend: Primary, Latency: 5 * ms}, {Backend: Shadow, Latency: 6 * ms}}}
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(ms)
		m.Step(now, RunResult{Backend: Primary, Latency: 5 * ms})
		m.Step(now, RunResult{Backend: Shadow, Latency: 6 * ms})
		m.Step(now, good)
		m.Step(now, Tick{})
	})
	if allocs != 0 {
		t.Fatalf("steady-state Step allocates %v times per run", allocs)
	}
}

func TestTimeNeverGoesBack(t *testing.T) {
	m := newMachine(t, func(c *Config) { c.MissThreshold = 1 })
	m.Step(t0.Add(10*time.Second), RunResult{Backend: Primary, Err: RunDeadline})
	if m.State(Primary) != Failed {
		t.Fatal("primary not failed")
	}
	// A late event stamped before the failure does not undo the cool-down.
	m.Step(t0, Tick{})
	if s := m.Status().Backends[Primary].Since; !s.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("Since = %v", s)
	}
	r := m.Step(t0.Add(11*time.Second), Tick{})
	if m.State(Primary) != Failed || len(r.Transitions) != 0 {
		t.Fatalf("cool-down counted from the past: %v", r.Transitions)
	}
}

func TestRejectedEvents(t *testing.T) {
	type bogus struct{ Event }
	tests := []struct {
		ev   Event
		want string
	}{
		{nil, "unknown event"},
		{bogus{}, "unknown event"},
		{RunResult{Backend: 9}, "unknown backend"},
		{Vote{Outcome: VoteOutlier, Outlier: 3}, "unknown backend"},
		{Vote{Outcome: 9}, "unknown vote outcome"},
		{Command{}, "unknown command"},
		{Command{Op: CmdForceOut, Backend: 5}, "unknown backend"},
		{Command{Op: CmdSetPolicy, Policy: 4}, "unknown policy"},
		{Command{Op: CmdClear, Backend: Shadow}, "not failed"},
		{RequestResult{NumRuns: 4}, "4 runs"},
		{RequestResult{NumRuns: -1}, "-1 runs"},
		{RequestResult{NumRuns: 1, Runs: [NumBackends]RunResult{{Backend: 3}}}, "unknown backend"},
		{RequestResult{NumRuns: 2, Runs: [NumBackends]RunResult{{Backend: Shadow}, {Backend: Shadow}}}, "two runs of shadow"},
		{RequestResult{NumRuns: 1, Runs: [NumBackends]RunResult{{Backend: Primary, Canary: true}}}, "canary"},
	}
	for _, tt := range tests {
		m := newMachine(t, nil)
		r := m.Step(t0, tt.ev)
		if len(r.Alerts) != 1 || r.Alerts[0].Kind != AlertRejected || !strings.Contains(r.Alerts[0].Message, tt.want) {
			t.Errorf("Step(%#v) alerts %v, want one rejected alert containing %q", tt.ev, r.Alerts, tt.want)
		}
		if len(r.Transitions) != 0 || r.PlanChanged {
			t.Errorf("Step(%#v) changed something: %v", tt.ev, r)
		}
	}
}

func TestStatus(t *testing.T) {
	m := newMachine(t, nil)
	m.Step(t0, HealthSample{Throttled: true})
	m.Step(t0, Command{Op: CmdForceOut, Backend: Shadow})
	st := m.Status()
	if st.GPUWarning != "thermal throttling" || st.GPUFault != "" {
		t.Fatalf("GPU status %q / %q", st.GPUWarning, st.GPUFault)
	}
	if b := st.Backends[Shadow]; !b.Forced || b.State != Failed || b.Reason != "operator force-out" {
		t.Fatalf("shadow status %+v", b)
	}
	if b := st.Backends[Primary]; b.State != Suspect || b.Latency != 10*ms {
		t.Fatalf("primary status %+v", b)
	}
	if st.Plan != m.Plan() || st.Policy != Hot || st.Counters.Transitions != 3 {
		t.Fatalf("status %+v", st)
	}
	if m.State(7) != Failed || m.Reason(7) == "" {
		t.Fatal("unknown backend must read as failed")
	}
}

// TestRandomInvariants steps random events and checks, after every step,
// what must always hold.
func TestRandomInvariants(t *testing.T) {
	var requestFaults uint64
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7919))
		data := make([]byte, 3*2000)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		requestFaults += checkInvariants(t, data).RequestFaults
	}
	if requestFaults == 0 {
		t.Error("no request fault in any stream: the streams do not exercise the rule")
	}
	t.Logf("%d request faults", requestFaults)
}

// FuzzMachine runs the same checks on fuzzed event streams
// (go test -fuzz FuzzMachine ./watchdog/).
func FuzzMachine(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 1, 2, 2, 2})
	f.Add([]byte("\x03\x00\x00\x00\x01\x00\x00\x01\x00\x00\x01\x00\x05\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) { checkInvariants(t, data) })
}

// checkInvariants decodes data three bytes an event (kind, argument, time
// step in units of 10ms), checks the machine after each one and returns its
// counters at the end.
func checkInvariants(t *testing.T, data []byte) Counters {
	t.Helper()
	m := newMachine(t, func(c *Config) {
		c.CoolDown = 200 * time.Millisecond
		c.CanaryInterval = 50 * time.Millisecond
		c.CanaryCount = 2
		c.CanaryMinSpan = 50 * time.Millisecond
		c.MaxSwitchesPerMinute = 3
	})
	now := t0
	seq := m.Plan().Seq
	var lastSwitch Counters
	for i := 0; i+2 < len(data); i += 3 {
		kind, arg := data[i], data[i+1]
		now = now.Add(time.Duration(data[i+2]) * 10 * time.Millisecond)
		b := Backend(arg % NumBackends)
		var ev Event
		switch kind % 10 {
		case 0, 1, 2:
			ev = RunResult{Backend: b, Latency: time.Duration(arg) * ms / 4,
				Err: RunErr(arg / 3 % 5 % 3), Invalid: Validity(arg / 15 % 6 % 4), Canary: arg&0x80 != 0}
		case 3:
			ev = Tick{}
		case 4:
			ev = Vote{Outcome: VoteOutcome(arg / 3 % 3), Outlier: b}
		case 5:
			ev = Comparison{Diverged: arg&1 == 1}
		case 6:
			ev = HealthSample{GPULost: arg%17 == 0, XidFatal: arg%19 == 0, ECCUncorrected: arg%23 == 0,
				Throttled: arg%5 == 0, TemperatureC: float64(arg)}
		case 7:
			ev = Command{Op: CommandOp(arg%3 + 1), Backend: b, Policy: Policy(arg / 3 % 3)}
		case 8:
			ev = randomRequest(arg)
		default:
			ev = Tick{}
		}
		before := [NumBackends]State{m.State(Primary), m.State(Shadow), m.State(Degraded)}
		faultsBefore := m.Counters().RequestFaults
		r := m.Step(now, ev)
		p := r.Plan
		if q, ok := ev.(RequestResult); ok {
			checkBlame(t, i/3, q, before, r.Transitions, m.Counters().RequestFaults-faultsBefore)
		}

		if p != m.Plan() || r.MRM != p.MRM {
			t.Fatalf("event %d: Ready.Plan/MRM disagree with the machine", i/3)
		}
		if r.PlanChanged != (p.Seq == seq+1) || (!r.PlanChanged && p.Seq != seq) {
			t.Fatalf("event %d: PlanChanged %v but Seq %d -> %d", i/3, r.PlanChanged, seq, p.Seq)
		}
		seq = p.Seq

		state := before
		for _, tr := range r.Transitions {
			if tr.From != state[tr.Backend] || !allowed(tr.From, tr.To) {
				t.Fatalf("event %d (%#v): transition %v not allowed (was %s)", i/3, ev, tr, state[tr.Backend])
			}
			if tr.Reason == "" {
				t.Fatalf("event %d: transition %v without a reason", i/3, tr)
			}
			state[tr.Backend] = tr.To
		}
		for bb := Primary; bb < NumBackends; bb++ {
			if state[bb] != m.State(bb) || p.States[bb] != m.State(bb) {
				t.Fatalf("event %d: transitions do not account for %s's state", i/3, bb)
			}
		}
		for _, c := range r.Canaries {
			if m.State(c.Backend) != Probation {
				t.Fatalf("event %d: canary for %s in state %s", i/3, c.Backend, m.State(c.Backend))
			}
		}

		// The plan follows from the states.
		var usable []Backend
		for bb := Primary; bb < NumBackends; bb++ {
			if m.State(bb).Usable() && !(m.Policy() == Cold && bb == Shadow && m.State(Primary).Usable()) {
				usable = append(usable, bb)
			}
		}
		if p.MRM != (len(usable) == 0) || p.NumStarts != len(usable) || (p.MRM && p.Reason == "") {
			t.Fatalf("event %d: plan %v for states %v", i/3, p, state)
		}
		for j, bb := range usable {
			if p.Prefer[j] != bb {
				t.Fatalf("event %d: prefer %v, want ladder order %v", i/3, p.PreferList(), usable)
			}
			if _, ok := p.Lookup(bb); !ok {
				t.Fatalf("event %d: plan %v does not start %s", i/3, p, bb)
			}
		}
		for j, s := range p.StartList() {
			if s.Delay < 0 || s.Delay > p.Deadline || (j > 0 && s.Delay < p.Starts[j-1].Delay) {
				t.Fatalf("event %d: bad delays in %v", i/3, p)
			}
		}
		_, hasP := p.Lookup(Primary)
		_, hasS := p.Lookup(Shadow)
		if p.Compare != (hasP && hasS) || p.Vote != (p.NumStarts == 3) {
			t.Fatalf("event %d: compare/vote wrong in %v", i/3, p)
		}
		c := m.Counters()
		if c.Switches != c.Failovers+c.Failbacks || c.Switches < lastSwitch.Switches {
			t.Fatalf("event %d: counters %+v", i/3, c)
		}
		lastSwitch = c
	}
	return m.Counters()
}

// randomRequest makes a RequestResult from one byte: which backends ran
// (the top two bits) and how each one's run went (two bits each: ok, run
// error, NaN, deadline miss).
func randomRequest(arg byte) RequestResult {
	var q RequestResult
	ran := [4]uint8{7, 3, 5, 6}[arg>>6]
	for b := Primary; b < NumBackends; b++ {
		if ran&(1<<b) == 0 {
			continue
		}
		r := RunResult{Backend: b, Latency: 5 * ms}
		switch arg >> (2 * b) & 3 {
		case 1:
			r.Err = RunFailed
		case 2:
			r.Invalid = InvalidNaN
		case 3:
			r.Err, r.Latency = RunDeadline, DefaultConfig().Deadline
		}
		q.Runs[q.NumRuns] = r
		q.NumRuns++
	}
	return q
}

// checkBlame checks the rule of request faults for one RequestResult, from
// the states before it: a run that failed the same way as another usable
// backend's run, on a request no usable backend answered well, blames
// nobody (and counts one request fault); only backends whose run failed
// otherwise may turn suspect or fail.
func checkBlame(t *testing.T, event int, q RequestResult, before [NumBackends]State, trs []Transition, faults uint64) {
	t.Helper()
	const good, miss, failed, invalid = 0, 1, 2, 3
	class := func(r RunResult) int {
		switch {
		case r.Err == RunDeadline:
			return miss
		case r.Err == RunFailed:
			return failed
		case r.Invalid != Valid:
			return invalid
		}
		return good
	}
	var n [4]int
	for _, r := range q.RunList() {
		if before[r.Backend].Usable() {
			n[class(r)]++
		}
	}
	var blamable [NumBackends]bool
	common := false
	for _, r := range q.RunList() {
		c := class(r)
		if !before[r.Backend].Usable() || c == good {
			continue
		}
		if n[good] == 0 && c != miss && n[c] >= 2 {
			common = true
			continue
		}
		blamable[r.Backend] = true
	}
	if want := map[bool]uint64{false: 0, true: 1}[common]; faults != want {
		t.Fatalf("event %d (%+v): %d request faults counted, want %d", event, q, faults, want)
	}
	for _, tr := range trs {
		if (tr.To == Suspect || tr.To == Failed) && !blamable[tr.Backend] {
			t.Fatalf("event %d (%+v): %v, but %s is not to blame", event, q, tr, tr.Backend)
		}
	}
}

// allowed is the state graph of the package documentation.
func allowed(from, to State) bool {
	switch to {
	case Suspect:
		return from == Healthy
	case Failed:
		return from != Failed
	case Probation:
		return from == Failed
	case Healthy:
		return from == Suspect || from == Probation
	}
	return false
}

func TestForceOutWithReason(t *testing.T) {
	m, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	m.Step(now, Command{Op: CmdForceOut, Backend: Primary, Reason: "not loaded: cuda:0 unavailable"})
	if m.State(Primary) != Failed || m.Reason(Primary) != "not loaded: cuda:0 unavailable" {
		t.Fatalf("primary %s (%s)", m.State(Primary), m.Reason(Primary))
	}
	// Forced out with a reason behaves like any force-out: no cool-down.
	m.Step(now.Add(time.Hour), Tick{})
	if m.State(Primary) != Failed {
		t.Errorf("primary left failed on its own: %s", m.State(Primary))
	}
}
