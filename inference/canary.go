package inference

import (
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// fillPattern gives canary inputs a fixed, unremarkable pattern.
func fillPattern(ts []Tensor) {
	for _, t := range ts {
		for i := range t.Data {
			t.Data[i] = float32(i%97) / 97
		}
	}
}

// Canary runs one canary probe of backend b off the serving path, with the
// given time budget and a fixed input; the result goes to the reporter with
// Canary set. It returns false, and runs nothing, when a canary of b is still
// running or the router is closing.
func (r *Router) Canary(b watchdog.Backend, budget time.Duration) bool {
	if !b.Valid() || r.closing.Load() {
		return false
	}
	var q *request
	select {
	case q = <-r.canaries[b]:
	default:
		return false
	}
	q.t0 = time.Now()
	q.deadline = q.t0.Add(budget)
	q.compare, q.vote = false, false
	q.refs.Store(1)
	if !r.dispatch(b, q) {
		r.notRun(b, q)
	}
	r.release(q)
	return true
}
