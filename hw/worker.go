package hw

import (
	"context"
	"sync"
	"time"
)

// worker runs calls that may block forever (NVML on a faulty GPU) on one
// dedicated goroutine, so that the caller waits at most a bound. After a call
// overruns its bound the worker is stuck: later calls fail at once with
// ErrStuck instead of queueing, so at most one goroutine is ever held by a
// hung call. The worker is free again when the stuck call returns.
type worker struct {
	jobs chan func()
	done chan struct{}

	mu    sync.Mutex
	stuck bool
}

func newWorker() *worker {
	w := &worker{jobs: make(chan func()), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for f := range w.jobs {
			f()
		}
	}()
	return w
}

func (w *worker) isStuck() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stuck
}

func (w *worker) setStuck(v bool) {
	w.mu.Lock()
	w.stuck = v
	w.mu.Unlock()
}

// call runs f on the worker and waits for it at most d (or until ctx ends).
// It returns ErrTimeout when f overran, ErrStuck when an earlier call is
// still running.
func (w *worker) call(ctx context.Context, d time.Duration, f func()) error {
	if w.isStuck() {
		return ErrStuck
	}
	var (
		mu        sync.Mutex
		finished  bool
		abandoned bool
	)
	doneCh := make(chan struct{})
	job := func() {
		f()
		mu.Lock()
		finished = true
		ab := abandoned
		mu.Unlock()
		if ab {
			w.setStuck(false)
		}
		close(doneCh)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case w.jobs <- job:
	case <-t.C:
		return ErrTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
	var why error
	select {
	case <-doneCh:
		return nil
	case <-t.C:
		why = ErrTimeout
	case <-ctx.Done():
		why = ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if finished {
		return nil
	}
	abandoned = true
	w.setStuck(true)
	return why
}

// stop ends the worker goroutine once its current call (if any) returns,
// and waits for that at most d, or until ctx ends. It reports whether the
// goroutine ended.
func (w *worker) stop(ctx context.Context, d time.Duration) bool {
	close(w.jobs)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}
