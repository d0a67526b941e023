package trial

import (
	"math/bits"
	"time"
)

// Stats is a trial's running account.
type Stats struct {
	// Seen counts the answers of the trial's rung the tap was shown while
	// the trial ran; Sampled those the sample rate picked.
	Seen    uint64 `json:"seen"`
	Sampled uint64 `json:"sampled"`
	// Dropped counts sampled requests the candidate never ran, because a
	// run was in flight or the cost cap had it wait (the tap's hand-off
	// holds one request and drops when it is taken).
	Dropped uint64 `json:"dropped"`
	// Samples counts the candidate runs done (one Sample each); Passed
	// those that answered in time within tolerance (Sample.Passed).
	Samples uint64 `json:"samples"`
	Passed  uint64 `json:"passed"`
	// Failures counts what went wrong, by kind; a sample may count
	// under two (diverged and over budget).
	Failures Failures `json:"failures"`
	// Latency percentiles of the candidate runs (within 1/16 of the
	// value: the upper edge of its histogram bucket, or the largest
	// latency when that is less) and the largest.
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	MaxLatency time.Duration `json:"max_latency_ns"`
	// MaxAbsDiff is the largest Sample.MaxAbsDiff.
	MaxAbsDiff float64 `json:"max_abs_diff"`
}

// Failures counts samples by what went wrong.
type Failures struct {
	// Diverged: answered, but some output element outside tolerance.
	Diverged uint64 `json:"diverged"`
	// OverBudget: the run took longer than the request's budget
	// (answered late, or abandoned after it).
	OverBudget uint64 `json:"over_budget"`
	// One count per ErrorKind.
	Hang       uint64 `json:"hang"`
	NaN        uint64 `json:"nan"`
	Inf        uint64 `json:"inf"`
	OutOfRange uint64 `json:"out_of_range"`
	Failed     uint64 `json:"failed"`
	Crashed    uint64 `json:"crashed"`
}

// tally adds up samples; the trial guards it with its lock.
type tally struct {
	st   Stats
	hist histogram
}

func (t *tally) add(s Sample) {
	st := &t.st
	st.Samples++
	if s.Passed() {
		st.Passed++
	}
	f := &st.Failures
	if s.Err == ErrNone && !s.Within {
		f.Diverged++
	}
	if s.OverBudget {
		f.OverBudget++
	}
	switch s.Err {
	case ErrHang:
		f.Hang++
	case ErrNaN:
		f.NaN++
	case ErrInf:
		f.Inf++
	case ErrRange:
		f.OutOfRange++
	case ErrFailed:
		f.Failed++
	case ErrCrashed:
		f.Crashed++
	}
	st.MaxLatency = max(st.MaxLatency, s.Latency)
	st.MaxAbsDiff = max(st.MaxAbsDiff, s.MaxAbsDiff)
	t.hist.add(s.Latency)
}

// snapshot returns the stats with their percentiles worked out.
func (t *tally) snapshot() Stats {
	st := t.st
	// A bucket's edge may lie past the largest latency it holds.
	st.P50 = min(t.hist.quantile(0.50), st.MaxLatency)
	st.P99 = min(t.hist.quantile(0.99), st.MaxLatency)
	return st
}

// histogram counts latencies in microseconds, in buckets of 1 µs up to
// 16 µs and then 16 buckets per power of two, so that a bucket's width is
// at most 1/16 of its values.
type histogram struct {
	counts [64 << subBits]uint64
	total  uint64
}

const subBits = 4

func bucketOf(us uint64) int {
	if us < 1<<subBits {
		return int(us)
	}
	shift := bits.Len64(us) - subBits - 1 // us>>shift is in [16, 32)
	return (shift+1)<<subBits + int(us>>shift) - 1<<subBits
}

// upperEdge is the first value past bucket i, in microseconds.
func upperEdge(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i) + 1
	}
	shift := i>>subBits - 1
	return (uint64(i&(1<<subBits-1)) + 1<<subBits + 1) << shift
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(uint64(max(d, 0)/time.Microsecond))]++
	h.total++
}

// quantile returns the upper edge of the bucket that holds the q-quantile.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(float64(h.total)*q + 0.999999)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(upperEdge(i)) * time.Microsecond
		}
	}
	return time.Duration(upperEdge(len(h.counts)-1)) * time.Microsecond
}
