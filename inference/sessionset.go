package inference

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// sessionSet is one model file loaded as a backend's sessions: the model's
// description, its sessions and the pool of those not running, each with
// the goroutine that makes its native calls. Load makes a backend's first
// set; Replace makes another and retires the one it replaces.
type sessionSet struct {
	info    Info
	pool    chan *slot
	slots   []*slot
	workers sync.WaitGroup
	// replaced is set, and retiring closed, once the set is out of
	// service (Replace or Close): a run that finds it so goes back to the
	// backend for the set in service, instead of waiting on this one.
	replaced   atomic.Bool
	retiring   chan struct{}
	retireOnce sync.Once
	// turn lets one close at a time collect the sessions; held is how many
	// it has taken out of the pool, kept so that a close that ctx cut short
	// goes on where it stopped.
	turn      chan struct{}
	held      int
	destroyed atomic.Bool
	// alloc places the sessions' tensors (a worker's shared memory); nil:
	// the Go heap.
	alloc func(size int) []byte
}

func newSessionSet(info Info) *sessionSet {
	return &sessionSet{
		info:     info,
		pool:     make(chan *slot, info.Sessions),
		retiring: make(chan struct{}),
		turn:     make(chan struct{}, 1),
	}
}

// errReplaced tells Backend.Run that the set it tried is out of service:
// it tries the set in service instead. It never leaves Run.
var errReplaced = errors.New("model replaced")

// retire takes the set out of service; runs already on its sessions go on.
func (g *sessionSet) retire() {
	g.retireOnce.Do(func() {
		g.replaced.Store(true)
		close(g.retiring)
	})
}

// close destroys the set's sessions once none of them runs. If ctx ends
// first it says how many still run and destroys nothing; called again, it
// goes on where it stopped. Where it can make progress it does, even with
// ctx over.
func (g *sessionSet) close(ctx context.Context) error {
	if !take(ctx, g.turn) {
		return fmt.Errorf("sessions of model %s: another close is collecting them: %w", g.info.Model.Path, ctx.Err())
	}
	defer func() { <-g.turn }()
	if g.destroyed.Load() {
		return nil
	}
	for ; g.held < len(g.slots); g.held++ {
		select {
		case <-g.pool:
			continue
		default:
		}
		select {
		case <-g.pool:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d sessions of model %s still running after %v; not destroyed", len(g.slots)-g.held, len(g.slots), g.info.Model.Path, ctx.Err())
		}
	}
	for _, s := range g.slots {
		close(s.start)
	}
	g.workers.Wait()
	g.destroy()
	return nil
}

// take sends on the one-place channel turn, waiting until ctx ends.
func take(ctx context.Context, turn chan struct{}) bool {
	select {
	case turn <- struct{}{}:
		return true
	default:
	}
	select {
	case turn <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// destroy frees the native sessions; no worker may be running.
func (g *sessionSet) destroy() {
	for _, s := range g.slots {
		s.destroy()
	}
	g.destroyed.Store(true)
}

func (g *sessionSet) isDestroyed() bool { return g.destroyed.Load() }
