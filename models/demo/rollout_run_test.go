package demo

import (
	"math"
	"slices"
	"testing"
	"time"
)

// minSlowRatio is the least median(PrimarySlow) / median(primary) the
// latency test accepts, one CPU thread each. Measured on the 2-core
// development VM (ONNX Runtime 1.24.3): about 0.5 ms against 85-90 ms, a
// ratio near 180; 20 leaves room for a busy machine while staying far above
// anything a model with the primary's cost could show.
const minSlowRatio = 20

// demoDeadline is the per-frame deadline of the demos (vigil-sim's and the
// watchdog's default), for the log line only: the test asserts a ratio.
const demoDeadline = 33 * time.Millisecond

// rolloutFrames returns the frames the rollout tests compare the models on:
// n random frames, as vigil-sim sends, then structured ones — flat grey
// levels, ramps, a checkerboard, a bright lower half and one bright channel
// — which a network sees very differently from noise.
func rolloutFrames(n int, seed uint64) [][]float32 {
	frames := randomFrames(n, seed)
	size := len(frames[0])
	const w, h = 200, 66
	pattern := func(f func(c, y, x int) float32) []float32 {
		out := make([]float32, size)
		for i := range out {
			out[i] = f(i/(w*h), i/w%h, i%w)
		}
		return out
	}
	for _, level := range []float32{0, 0.5, 1} {
		frames = append(frames, pattern(func(int, int, int) float32 { return level }))
	}
	frames = append(frames,
		pattern(func(_, _, x int) float32 { return float32(x) / (w - 1) }),
		pattern(func(_, y, _ int) float32 { return float32(y) / (h - 1) }),
		pattern(func(_, y, x int) float32 { return float32((x/8 + y/8) % 2) }),
		pattern(func(_, y, _ int) float32 { return float32(y / (h / 2)) }),
		pattern(func(c, _, _ int) float32 { return float32(c % 2) }),
	)
	return frames
}

// maxAbsDiff is the largest |a[k] - b[k]|.
func maxAbsDiff(a, b [3]float32) float64 {
	d := 0.0
	for k := range a {
		d = max(d, math.Abs(float64(a[k])-float64(b[k])))
	}
	return d
}

// checkInRange fails the test if any output is NaN, infinite or outside
// OutputRanges.
func checkInRange(t *testing.T, name string, frame int, out [3]float32) {
	t.Helper()
	for k, v := range out {
		r := OutputRanges[k]
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < r[0] || v > r[1] {
			t.Errorf("%s, frame %d: controls[%d] = %g, want finite in [%g, %g]", name, frame, k, v, r[0], r[1])
		}
	}
}

// TestRolloutOutputs compares each rollout version with the primary (v1)
// and with PrimaryV2 (the live primary once v2 has committed) on the same
// frames: v2 and slow within RolloutTolerance, bad beyond twice it on every
// frame, and every output finite and inside its declared range.
func TestRolloutOutputs(t *testing.T) {
	frames := rolloutFrames(40, 21)
	v1 := newSession(t, mustGenerate(t, RolePrimary))
	v2 := newSession(t, mustRollout(t, PrimaryV2))
	bad := newSession(t, mustRollout(t, PrimaryBad))
	slow := newSession(t, mustRollout(t, PrimarySlow))

	var v2Max, badMin, badMinV2, slowMax, slowMaxV2 float64
	badMin, badMinV2 = math.Inf(1), math.Inf(1)
	for i, f := range frames {
		ref, o2, ob := v1.run(t, f), v2.run(t, f), bad.run(t, f)
		checkInRange(t, PrimaryV2, i, o2)
		checkInRange(t, PrimaryBad, i, ob)
		v2Max = max(v2Max, maxAbsDiff(o2, ref))
		badMin = min(badMin, maxAbsDiff(ob, ref))
		badMinV2 = min(badMinV2, maxAbsDiff(ob, o2))
		// The slow model costs ~90 ms a frame: a few random frames and
		// every structured one.
		if i < 6 || i >= 40 {
			osl := slow.run(t, f)
			checkInRange(t, PrimarySlow, i, osl)
			slowMax = max(slowMax, maxAbsDiff(osl, ref))
			slowMaxV2 = max(slowMaxV2, maxAbsDiff(osl, o2))
		}
	}
	t.Logf("over %d frames, tolerance %g: max |v2-v1| %.3g; min |bad-v1| %.3g, min |bad-v2| %.3g; max |slow-v1| %.3g, max |slow-v2| %.3g",
		len(frames), RolloutTolerance, v2Max, badMin, badMinV2, slowMax, slowMaxV2)

	if v2Max >= RolloutTolerance {
		t.Errorf("v2 differs from v1 by up to %g, want < %g", v2Max, RolloutTolerance)
	}
	if v2Max < RolloutTolerance/10 {
		t.Errorf("v2 differs from v1 by at most %g, want a visible change (at least %g somewhere)", v2Max, RolloutTolerance/10)
	}
	if badMin <= 2*RolloutTolerance || badMinV2 <= 2*RolloutTolerance {
		t.Errorf("bad comes within %g of v1 and %g of v2 on some frame, want more than %g on every one", badMin, badMinV2, 2*RolloutTolerance)
	}
	// The chain's mean lies in (-1,1) and Tanh and Sigmoid have slopes of
	// at most 1, so no output moves by SlowBranchScale or more.
	if slowMax >= SlowBranchScale {
		t.Errorf("slow differs from v1 by up to %g, want < SlowBranchScale %g", slowMax, SlowBranchScale)
	}
	if slowMax == 0 {
		t.Error("slow is bit-exact with v1 on every frame: its chain adds nothing")
	}
	if slowMaxV2 >= RolloutTolerance {
		t.Errorf("slow differs from v2 by up to %g, want < %g", slowMaxV2, RolloutTolerance)
	}
}

// TestSlowRolloutLatency times PrimarySlow against the primary, one CPU
// thread each, alternating runs so that both see the same machine load.
func TestSlowRolloutLatency(t *testing.T) {
	frames := randomFrames(9, 31)
	v1 := newSession(t, mustGenerate(t, RolePrimary))
	slow := newSession(t, mustRollout(t, PrimarySlow))
	for _, s := range []*session{v1, slow} { // warm-up: first runs allocate
		s.run(t, frames[0])
		s.run(t, frames[1])
	}
	timed := func(s *session, f []float32) time.Duration {
		start := time.Now()
		s.run(t, f)
		return time.Since(start)
	}
	var fast, slowTimes []time.Duration
	for _, f := range frames {
		fast = append(fast, timed(v1, f))
		slowTimes = append(slowTimes, timed(slow, f))
	}
	slices.Sort(fast)
	slices.Sort(slowTimes)
	v1Med, slowMed := fast[len(fast)/2], slowTimes[len(slowTimes)/2]
	ratio := float64(slowMed) / float64(v1Med)
	t.Logf("median of %d runs: v1 %v, slow %v, ratio %.0f (demo deadline %v: v1 meets it %v, slow misses it %v)",
		len(frames), v1Med, slowMed, ratio, demoDeadline, v1Med < demoDeadline, slowMed > demoDeadline)
	if ratio < minSlowRatio {
		t.Errorf("slow median %v is %.1f× v1's %v, want at least %d×", slowMed, ratio, v1Med, minSlowRatio)
	}
}
