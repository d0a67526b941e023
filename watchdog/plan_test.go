package watchdog

import (
	"testing"
	"time"
)

const ms = time.Millisecond

func TestHedgeDelay(t *testing.T) {
	tests := []struct {
		name                          string
		p95, shadow, deadline, margin time.Duration
		factor                        float64
		want                          time.Duration
	}{
		{"p95 wins", 6 * ms, 10 * ms, 33 * ms, 2 * ms, 1, 6 * ms},
		{"factor scales", 6 * ms, 10 * ms, 33 * ms, 2 * ms, 1.5, 9 * ms},
		{"capped by the shadow's time", 20 * ms, 15 * ms, 33 * ms, 2 * ms, 1, 16 * ms},
		{"never negative", 5 * ms, 40 * ms, 33 * ms, 2 * ms, 1, 0},
		{"rounded down to 0.5ms", 7300 * time.Microsecond, 10 * ms, 33 * ms, 2 * ms, 1, 7 * ms},
		{"rounded down, factor", 7300 * time.Microsecond, 10 * ms, 33 * ms, 2 * ms, 1.5, 10500 * time.Microsecond},
		{"zero p95", 0, 10 * ms, 33 * ms, 2 * ms, 1, 0},
	}
	for _, tt := range tests {
		got := hedgeDelay(tt.p95, tt.shadow, tt.deadline, tt.margin, tt.factor)
		if got != tt.want {
			t.Errorf("%s: hedgeDelay(%v, %v, %v, %v, %v) = %v, want %v",
				tt.name, tt.p95, tt.shadow, tt.deadline, tt.margin, tt.factor, got, tt.want)
		}
	}
}

func TestLastResortDelay(t *testing.T) {
	tests := []struct{ est, deadline, margin, want time.Duration }{
		{10 * ms, 33 * ms, 2 * ms, 21 * ms},
		{15300 * time.Microsecond, 33 * ms, 2 * ms, 15500 * time.Microsecond},
		{31 * ms, 33 * ms, 2 * ms, 0},
		{50 * ms, 33 * ms, 2 * ms, 0},
	}
	for _, tt := range tests {
		if got := lastResortDelay(tt.est, tt.deadline, tt.margin); got != tt.want {
			t.Errorf("lastResortDelay(%v, %v, %v) = %v, want %v", tt.est, tt.deadline, tt.margin, got, tt.want)
		}
	}
}

func TestP95(t *testing.T) {
	var r latencyRing
	if got := r.p95(10 * ms); got != 10*ms {
		t.Fatalf("empty ring: p95 = %v, want the initial 10ms", got)
	}
	r.add(4 * ms)
	if got := r.p95(10 * ms); got != 4*ms {
		t.Fatalf("one sample: p95 = %v, want 4ms", got)
	}
	r.reset()
	for i := 1; i <= 100; i++ { // the ring keeps the last 32: 69..100
		r.add(time.Duration(i) * ms)
	}
	// Nearest rank of 32 samples: ceil(0.95*32) = 31st smallest = 99.
	if got := r.p95(0); got != 99*ms {
		t.Fatalf("p95 of 69..100ms = %v, want 99ms", got)
	}
	r.reset()
	for i := 0; i < 19; i++ {
		r.add(6 * ms)
	}
	r.add(30 * ms)
	if got := r.p95(0); got != 6*ms {
		t.Fatalf("19 x 6ms + 30ms: p95 = %v, want 6ms", got)
	}
}

func TestPlanAccessors(t *testing.T) {
	m, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	p := m.Plan()
	if p.Seq != 1 || p.NumStarts != 3 || len(p.StartList()) != 3 || len(p.PreferList()) != 3 {
		t.Fatalf("initial plan %v", p)
	}
	if b, ok := p.Active(); !ok || b != Primary {
		t.Fatalf("Active() = %v, %v", b, ok)
	}
	if s, ok := p.Lookup(Degraded); !ok || s.Delay != 21*ms {
		t.Fatalf("Lookup(Degraded) = %v, %v", s, ok)
	}
	if got, want := p.String(), "#1 hot primary@0s shadow@0s degraded@21ms compare vote"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	var mrm Plan
	mrm.MRM, mrm.Reason = true, "no usable backend"
	if _, ok := mrm.Active(); ok {
		t.Fatal("Active() of an MRM plan reported a backend")
	}
	if _, ok := mrm.Lookup(Primary); ok {
		t.Fatal("Lookup in an MRM plan found a start")
	}
}

func TestVoteOf(t *testing.T) {
	tests := []struct {
		ps, pd, sd bool
		want       Vote
	}{
		{true, true, true, Vote{Outcome: VoteAgree}},
		{true, false, false, Vote{Outcome: VoteOutlier, Outlier: Degraded}},
		{false, true, false, Vote{Outcome: VoteOutlier, Outlier: Shadow}},
		{false, false, true, Vote{Outcome: VoteOutlier, Outlier: Primary}},
		{false, false, false, Vote{Outcome: VoteInconclusive}},
		{true, true, false, Vote{Outcome: VoteInconclusive}}, // not transitive
		{true, false, true, Vote{Outcome: VoteInconclusive}},
		{false, true, true, Vote{Outcome: VoteInconclusive}},
	}
	for _, tt := range tests {
		if got := VoteOf(tt.ps, tt.pd, tt.sd); got != tt.want {
			t.Errorf("VoteOf(%v, %v, %v) = %+v, want %+v", tt.ps, tt.pd, tt.sd, got, tt.want)
		}
	}
}

func TestParseNames(t *testing.T) {
	for b := Primary; b < NumBackends; b++ {
		if got, err := ParseBackend(b.String()); err != nil || got != b {
			t.Errorf("ParseBackend(%q) = %v, %v", b, got, err)
		}
	}
	for s := Healthy; s <= Probation; s++ {
		if got, err := ParseState(s.String()); err != nil || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s, got, err)
		}
	}
	for p := Hot; p <= Cold; p++ {
		if got, err := ParsePolicy(p.String()); err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := ParseBackend("tertiary"); err == nil {
		t.Error("ParseBackend accepted an unknown name")
	}
	if Primary.GPU() != true || Shadow.GPU() != true || Degraded.GPU() != false {
		t.Error("GPU(): primary and shadow are GPU backends, degraded is not")
	}
}

// TestKillGrace: a run may stay busy past its deadline for MissThreshold
// deadlines (or MissThreshold p95s of a backend slower than the deadline),
// rounded down to 0.5ms.
func TestKillGrace(t *testing.T) {
	tests := []struct {
		misses        int
		deadline, p95 time.Duration
		want          time.Duration
	}{
		{3, 33 * ms, 10 * ms, 99 * ms},
		{3, 33 * ms, 33 * ms, 99 * ms},
		{5, 20 * ms, 4 * ms, 100 * ms},
		{1, 33 * ms, 0, 33 * ms},
		{3, 33 * ms, 50 * ms, 150 * ms},
		{2, 10*ms + 300*time.Microsecond, 0, 20*ms + 500*time.Microsecond},
	}
	for _, tt := range tests {
		if got := killGrace(tt.misses, tt.deadline, tt.p95); got != tt.want {
			t.Errorf("killGrace(%d, %v, %v) = %v, want %v", tt.misses, tt.deadline, tt.p95, got, tt.want)
		}
	}
}

// TestPlanKillGrace: every plan carries each backend's kill grace, from
// the configuration's deadline and miss threshold, for backends in the plan
// and out of it alike.
func TestPlanKillGrace(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Deadline, cfg.MissThreshold = 40*ms, 4
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Plan()
	for b := range NumBackends {
		if p.KillGrace[b] != 160*ms {
			t.Errorf("%s: kill grace %v, want 4 × 40ms", Backend(b), p.KillGrace[b])
		}
	}
}
