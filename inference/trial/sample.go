package trial

import (
	"errors"
	"math"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/models/bundle"
)

// ErrorKind is what went wrong with a candidate run; "" when nothing did.
type ErrorKind string

// Error kinds.
const (
	ErrNone ErrorKind = ""
	// ErrHang: no answer by the run's deadline (Config.RunTimeout); the
	// run was abandoned. A hung candidate, or one far too slow.
	ErrHang ErrorKind = "hang"
	// ErrNaN, ErrInf and ErrRange: the candidate answered with a NaN, an
	// infinite value, or a value outside a range its model declares.
	ErrNaN   ErrorKind = "nan"
	ErrInf   ErrorKind = "inf"
	ErrRange ErrorKind = "out_of_range"
	// ErrFailed: the run returned an error (the runtime failed it).
	ErrFailed ErrorKind = "failed"
	// ErrCrashed: the run panicked; the trial recovered and goes on.
	ErrCrashed ErrorKind = "crashed"
)

// Sample is one sampled request: the candidate's run on its inputs and
// how it compares with the answer that was served.
type Sample struct {
	// Seq numbers the trial's samples from 1.
	Seq uint64 `json:"seq"`
	// At is when the candidate run started.
	At time.Time `json:"at"`
	// Err says what went wrong with the run; "" when it answered with
	// valid outputs, which were then compared.
	Err ErrorKind `json:"err,omitempty"`
	// Detail is the run's error message, when there was one.
	Detail string `json:"detail,omitempty"`
	// Within: the outputs were compared and every element is within the
	// tolerance. False whenever Err is set.
	Within bool `json:"within"`
	// MaxAbsDiff is the largest |candidate - served| over the float32
	// output elements; 0 when the outputs were not compared.
	MaxAbsDiff float64 `json:"max_abs_diff"`
	// Latency is the candidate run's wall time (up to its abandonment,
	// for a hang); Budget is the sampled request's (its deadline less its
	// arrival), and OverBudget says Latency exceeded it: as the live model
	// the candidate would have missed that deadline.
	Latency    time.Duration `json:"latency_ns"`
	Budget     time.Duration `json:"budget_ns"`
	OverBudget bool          `json:"over_budget"`
}

// Passed reports whether the candidate did all it must on this request:
// answered, in time, within tolerance.
func (s Sample) Passed() bool { return s.Err == ErrNone && s.Within && !s.OverBudget }

// kindOf classifies a run's error.
func kindOf(err error) ErrorKind {
	var invalid *inference.InvalidOutputError
	switch {
	case err == nil:
		return ErrNone
	case errors.As(err, &invalid):
		switch invalid.Reason {
		case inference.InvalidNaN:
			return ErrNaN
		case inference.InvalidInf:
			return ErrInf
		}
		return ErrRange
	case errors.Is(err, inference.ErrDeadline):
		return ErrHang
	}
	return ErrFailed
}

// compare returns the largest |c - p| over the float32 elements of the
// candidate's outputs cand and the served outputs, which share a
// contract, and whether every element satisfies |c-p| <= Abs + Rel*|p|.
// NaN anywhere, or outputs of another dtype that differ in any byte, are
// not within tolerance.
func compare(cand, served []inference.Tensor, tol bundle.Tolerance) (maxDiff float64, within bool) {
	within = len(cand) == len(served)
	for i := range min(len(cand), len(served)) {
		c, p := &cand[i], &served[i]
		if len(c.Data) != len(p.Data) || string(c.Raw) != string(p.Raw) {
			within = false
			continue
		}
		for j, pv := range p.Data {
			d := math.Abs(float64(c.Data[j]) - float64(pv))
			if d != d {
				within = false
				continue
			}
			maxDiff = max(maxDiff, d)
			if d > tol.Abs+tol.Rel*math.Abs(float64(pv)) {
				within = false
			}
		}
	}
	return maxDiff, within
}

// sampler picks a share of the answers it is shown, evenly: answer n
// (counted from 1) is picked when floor(n·rate) moves. The rate is kept in
// parts per million so that the count is exact.
type sampler struct{ ppm uint64 }

func newSampler(rate float64) sampler {
	return sampler{ppm: max(1, uint64(math.Round(rate*1e6)))}
}

func (s sampler) picks(n uint64) bool {
	return n*s.ppm/1_000_000 != (n-1)*s.ppm/1_000_000
}

// nextStart is the earliest start of the candidate's next run after one
// that started at start and took took: no more than MaxRate runs a second,
// and no more than MaxShare of the wall time spent running. c must have
// its defaults.
func (c Config) nextStart(start time.Time, took time.Duration) time.Time {
	gap := time.Duration(float64(time.Second) / c.MaxRate)
	if byShare := time.Duration(float64(took) / c.MaxShare); byShare > gap {
		gap = byShare
	}
	return start.Add(gap)
}
