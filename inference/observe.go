package inference

import (
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// AnswerObserver sees every answer the router gives (StatusOK or
// StatusNoResult), with its latency, on the request path, after the
// router's own counters: the daemon's latency histograms. Requests
// refused for their inputs (*InputError) are not answers and are not
// observed.
//
// ObserveAnswer is called before Infer returns. It must return at once:
// never block, never allocate, never take a lock a slow party may hold
// (atomic adds are what it is for). It gets a summary by value, not the
// caller's *Answer: a pointer handed to an interface method escapes, and
// every caller's Answer would then be allocated on the heap.
type AnswerObserver interface {
	ObserveAnswer(AnswerSummary)
}

// AnswerSummary is what an AnswerObserver sees of an answer.
type AnswerSummary struct {
	Status   Status
	Reason   Reason
	ServedBy watchdog.Backend
	Active   watchdog.Backend
	Latency  time.Duration
}

// Summary returns a's summary for an AnswerObserver.
func (a *Answer) Summary() AnswerSummary {
	return AnswerSummary{Status: a.Status, Reason: a.Reason, ServedBy: a.ServedBy, Active: a.Active, Latency: a.Latency}
}

// observerHolder boxes an AnswerObserver so that one atomic load tells
// whether one is set.
type observerHolder struct{ o AnswerObserver }

// SetAnswerObserver installs o; nil removes it. A request already on its
// way may still reach the observer set before.
func (r *Router) SetAnswerObserver(o AnswerObserver) {
	if o == nil {
		r.observer.Store(nil)
		return
	}
	r.observer.Store(&observerHolder{o})
}
