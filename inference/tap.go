package inference

import (
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// Tap sees the requests the router has answered, for work that must stay
// off the serving path: a candidate model's trial (package
// inference/trial) runs the candidate on a sample of them and compares.
//
// Answered is called on the request path, before Infer returns, for every
// request answered with StatusOK. It must return at once: never block,
// never wait for a lock a slow party may hold, and hand work to its own
// goroutines through a bounded queue that drops when full. The tensors are
// valid only until Answered returns — In is the caller's memory (for a
// frame in shared memory, the supervisor's buffer), Out the router's
// buffers: copy what you keep.
type Tap interface {
	Answered(Tapped)
}

// Tapped is one answered request as a Tap sees it.
type Tapped struct {
	// In holds the request's inputs and Out the served outputs, in the
	// contract's order (Router.Inputs, Router.Outputs), shaped for the
	// request's frames.
	In, Out []Tensor
	// ServedBy is the rung whose outputs were served.
	ServedBy watchdog.Backend
	// Arrived is when Infer took the request; Deadline is the caller's,
	// so Deadline.Sub(Arrived) is the request's budget.
	Arrived, Deadline time.Time
}

// tapHolder boxes a Tap so that one atomic load tells whether one is set.
type tapHolder struct{ t Tap }

// SetTap installs t; nil removes the tap. A request whose answer was
// already on its way may still reach the tap set before, so a Tap must
// stay callable after it is removed.
func (r *Router) SetTap(t Tap) {
	if t == nil {
		r.tap.Store(nil)
		return
	}
	r.tap.Store(&tapHolder{t})
}
