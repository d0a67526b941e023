package inference

// AnswerObserver sees every answer the router gives (StatusOK or
// StatusNoResult), with its latency, on the request path, after the
// router's own counters: the daemon's latency histograms. Requests
// refused for their inputs (*InputError) are not answers and are not
// observed.
//
// ObserveAnswer is called before Infer returns. It must return at once:
// never block, never allocate, never take a lock a slow party may hold
// (atomic adds are what it is for). The Answer is the caller's and is
// reused once Infer returns: read it, do not keep it.
type AnswerObserver interface {
	ObserveAnswer(*Answer)
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
