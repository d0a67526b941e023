package watchdog

import "fmt"

// Backend names one rung of the degradation ladder. There are exactly three,
// tried in this order: Primary, Shadow, Degraded.
type Backend uint8

const (
	// Primary is the main model on the GPU.
	Primary Backend = iota
	// Shadow is the second model on the GPU.
	Shadow
	// Degraded is the small model on the CPU. It is always loaded and warm.
	Degraded
)

// NumBackends is the number of rungs on the ladder.
const NumBackends = 3

// String returns "primary", "shadow" or "degraded".
func (b Backend) String() string {
	switch b {
	case Primary:
		return "primary"
	case Shadow:
		return "shadow"
	case Degraded:
		return "degraded"
	}
	return fmt.Sprintf("backend(%d)", uint8(b))
}

// Valid reports whether b is one of the three backends.
func (b Backend) Valid() bool { return b < NumBackends }

// GPU reports whether b runs on the GPU, and so is affected by GPU health
// samples. Primary and Shadow do; Degraded runs on the CPU.
func (b Backend) GPU() bool { return b == Primary || b == Shadow }

// ParseBackend is the inverse of Backend.String.
func ParseBackend(s string) (Backend, error) {
	for b := Primary; b < NumBackends; b++ {
		if b.String() == s {
			return b, nil
		}
	}
	return 0, fmt.Errorf("unknown backend %q (want primary, shadow or degraded)", s)
}

// State is where a backend stands in the cycle
// healthy → suspect → failed → probation → healthy.
type State uint8

const (
	// Healthy backends serve.
	Healthy State = iota
	// Suspect backends still serve, but the plan starts the next rung early
	// (no hedge delay) because they may be about to fail.
	Suspect
	// Failed backends do not serve. After the cool-down they move to
	// probation, unless an operator forced them out or the GPU is still
	// faulty.
	Failed
	// Probation backends do not serve; the machine asks for canary runs and
	// takes them back once enough canaries passed over long enough.
	Probation
)

// String returns "healthy", "suspect", "failed" or "probation".
func (s State) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case Suspect:
		return "suspect"
	case Failed:
		return "failed"
	case Probation:
		return "probation"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Usable reports whether a backend in this state may serve requests.
func (s State) Usable() bool { return s == Healthy || s == Suspect }

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) {
	for st := Healthy; st <= Probation; st++ {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown state %q (want healthy, suspect, failed or probation)", s)
}

// Policy is the redundancy policy: how much of the ladder runs on every
// request. See the package documentation for the plans each one yields.
type Policy uint8

const (
	// Hot runs primary and shadow on every request.
	Hot Policy = iota
	// Warm runs the primary, and the shadow only after the hedge delay.
	Warm
	// Cold runs only the first usable GPU backend; the degraded model
	// answers when it fails.
	Cold
)

// String returns "hot", "warm" or "cold".
func (p Policy) String() string {
	switch p {
	case Hot:
		return "hot"
	case Warm:
		return "warm"
	case Cold:
		return "cold"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// Valid reports whether p is one of the three policies.
func (p Policy) Valid() bool { return p <= Cold }

// ParsePolicy is the inverse of Policy.String.
func ParsePolicy(s string) (Policy, error) {
	for p := Hot; p <= Cold; p++ {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown policy %q (want hot, warm or cold)", s)
}
