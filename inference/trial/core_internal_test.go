package trial

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/demo"
)

func TestDefaultToleranceIsTheRollouts(t *testing.T) {
	if DefaultTolerance != (bundle.Tolerance{Abs: demo.RolloutTolerance}) {
		t.Errorf("DefaultTolerance %+v, want abs %v (demo.RolloutTolerance)", DefaultTolerance, demo.RolloutTolerance)
	}
	if got := (Config{}).withDefaults().Tolerance; got != DefaultTolerance {
		t.Errorf("a config without tolerance gets %+v", got)
	}
}

func f32(v ...float32) []inference.Tensor { return []inference.Tensor{{Name: "y", Data: v}} }

func TestCompare(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		name         string
		cand, served []inference.Tensor
		tol          bundle.Tolerance
		diff         float64
		within       bool
	}{
		{"equal", f32(1, 2, 3), f32(1, 2, 3), DefaultTolerance, 0, true},
		{"abs within", f32(0.54, 0), f32(0.5, 0), bundle.Tolerance{Abs: 0.05}, 0.04, true},
		{"abs beyond", f32(0.56, 0), f32(0.5, 0), bundle.Tolerance{Abs: 0.05}, 0.06, false},
		{"rel within", f32(10.9), f32(10), bundle.Tolerance{Rel: 0.1}, 0.9, true},
		{"rel of the served, not the candidate", f32(-8.9), f32(-10), bundle.Tolerance{Rel: 0.1}, 1.1, false},
		{"abs plus rel", f32(11.05), f32(10), bundle.Tolerance{Abs: 0.1, Rel: 0.1}, 1.05, true},
		{"NaN", f32(nan, 0.9), f32(0, 0), bundle.Tolerance{Abs: 1}, 0.9, false},
		{"length", f32(1), f32(1, 2), DefaultTolerance, 0, false},
		{"tensors", f32(1), append(f32(1), f32(2)...), DefaultTolerance, 0, false},
		{"raw equal", []inference.Tensor{{Raw: []byte{1, 2}}}, []inference.Tensor{{Raw: []byte{1, 2}}}, DefaultTolerance, 0, true},
		{"raw differs", []inference.Tensor{{Raw: []byte{1, 2}}}, []inference.Tensor{{Raw: []byte{1, 3}}}, DefaultTolerance, 0, false},
	} {
		diff, within := compare(c.cand, c.served, c.tol)
		if math.Abs(diff-c.diff) > 1e-5 || within != c.within {
			t.Errorf("%s: diff %v within %v, want %v %v", c.name, diff, within, c.diff, c.within)
		}
	}
}

func TestSamplerPicksItsShareEvenly(t *testing.T) {
	for _, c := range []struct {
		rate  float64
		first []uint64 // the first picks
	}{
		{1, []uint64{1, 2, 3, 4}},
		{0.5, []uint64{2, 4, 6, 8}},
		{0.1, []uint64{10, 20, 30, 40}},
		{0.3, []uint64{4, 7, 10, 14}},
		{1e-9, nil}, // rounds up to one in a million
	} {
		s := newSampler(c.rate)
		var picks []uint64
		total := 0
		for n := uint64(1); n <= 10000; n++ {
			if s.picks(n) {
				total++
				if len(picks) < len(c.first) {
					picks = append(picks, n)
				}
			}
		}
		if fmt.Sprint(picks) != fmt.Sprint(c.first) {
			t.Errorf("rate %v: first picks %v, want %v", c.rate, picks, c.first)
		}
		if want := int(math.Floor(10000 * max(c.rate, 1e-6))); total != want {
			t.Errorf("rate %v: %d picks of 10000, want %d", c.rate, total, want)
		}
	}
}

func TestNextStartHoldsRateAndShare(t *testing.T) {
	start := time.Unix(1000, 0)
	cfg := Config{MaxRate: 5, MaxShare: 0.25}.withDefaults()
	for _, c := range []struct {
		took, gap time.Duration
	}{
		{time.Millisecond, 200 * time.Millisecond}, // the rate: 5 a second
		{50 * time.Millisecond, 200 * time.Millisecond},
		{90 * time.Millisecond, 360 * time.Millisecond}, // the share: 90ms is a quarter of 360ms
		{0, 200 * time.Millisecond},
	} {
		if got := cfg.nextStart(start, c.took).Sub(start); got != c.gap {
			t.Errorf("after a run of %v: next start %v later, want %v", c.took, got, c.gap)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want ErrorKind
	}{
		{nil, ErrNone},
		{fmt.Errorf("backend x: %w", &inference.InvalidOutputError{Reason: inference.InvalidNaN}), ErrNaN},
		{&inference.InvalidOutputError{Reason: inference.InvalidInf}, ErrInf},
		{&inference.InvalidOutputError{Reason: inference.InvalidRange}, ErrRange},
		{&inference.DeadlineError{Backend: "x", Stage: "running"}, ErrHang},
		{fmt.Errorf("backend x: %w", inference.ErrInjected), ErrFailed},
		{errors.New("onnxruntime: something broke"), ErrFailed},
	} {
		if got := kindOf(c.err); got != c.want {
			t.Errorf("kindOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<20; us += 1 + us/64 {
		i := bucketOf(us)
		if i < prev || i >= len(histogram{}.counts) {
			t.Fatalf("bucketOf(%d) = %d after %d", us, i, prev)
		}
		prev = i
		if edge := upperEdge(i); edge <= us || (us >= 16 && float64(edge-us) > float64(us)/16+1) {
			t.Fatalf("bucket %d of %dµs ends at %dµs", i, us, edge)
		}
	}
	if i := bucketOf(math.MaxUint64); i >= len(histogram{}.counts) {
		t.Fatalf("bucketOf(max) = %d", i)
	}
}

func TestTallyCountsByKindAndPercentiles(t *testing.T) {
	var tl tally
	ms := time.Millisecond
	for i := range 98 {
		tl.add(Sample{Within: true, MaxAbsDiff: 0.01, Latency: time.Duration(i+1) * 100 * time.Microsecond, Budget: 33 * ms})
	}
	tl.add(Sample{Within: false, MaxAbsDiff: 0.3, Latency: 40 * ms, Budget: 33 * ms, OverBudget: true})
	tl.add(Sample{Err: ErrHang, Latency: 66 * ms, Budget: 33 * ms, OverBudget: true})
	for _, k := range []ErrorKind{ErrNaN, ErrInf, ErrRange, ErrFailed, ErrCrashed} {
		tl.add(Sample{Err: k, Latency: ms, Budget: 33 * ms})
	}
	st := tl.snapshot()
	want := Failures{Diverged: 1, OverBudget: 2, Hang: 1, NaN: 1, Inf: 1, OutOfRange: 1, Failed: 1, Crashed: 1}
	if st.Samples != 105 || st.Passed != 98 || st.Failures != want || st.MaxAbsDiff != 0.3 || st.MaxLatency != 66*ms {
		t.Errorf("stats %+v", st)
	}
	// 105 samples: the 53rd is 4.8ms (five of 1ms come before it), the
	// 104th 40ms; a percentile is its bucket's upper edge, within 1/16.
	p50 := 4800 * time.Microsecond
	if st.P50 < p50 || st.P50 > p50+p50/16 || st.P99 < 40*ms || st.P99 > 40*ms+40*ms/16 {
		t.Errorf("p50 %v p99 %v, want about 4.8ms and 40ms", st.P50, st.P99)
	}
}

// TestConfigRefusals: each bad field is refused with its name.
func TestConfigRefusals(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Rung: "tertiary"}, "rung"},
		{Config{SampleRate: 1.5}, "sample_rate 1.5"},
		{Config{SampleRate: -0.1}, "sample_rate"},
		{Config{SampleRate: math.NaN()}, "sample_rate"},
		{Config{MaxRate: -1}, "max_rate"},
		{Config{MaxRate: math.Inf(1)}, "max_rate"},
		{Config{MaxShare: 2}, "max_share"},
		{Config{RunTimeout: -time.Second}, "run_timeout"},
		{Config{Tolerance: bundle.Tolerance{Abs: -1}}, "tolerance.abs"},
		{Config{Tolerance: bundle.Tolerance{Rel: math.NaN()}}, "tolerance.rel"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
	if err := (Config{Rung: "shadow", SampleRate: 1, MaxRate: 30, MaxShare: 1, RunTimeout: time.Second}).Validate(); err != nil {
		t.Errorf("a good config: %v", err)
	}
}
