package inference

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-av/vigil/watchdog"
)

// Replacing a model
//
// A backend runs its model on a set of sessions (sessionSet); Backend.cur
// points at the set in service and a run loads it once. Replace loads the
// new model into a set of its own on the caller's goroutine, with the
// backend's Config (provider, threads, sessions, warm-up), checks its
// contract against the set in service, and only then stores it in cur:
// from that instant runs take the new sessions. The old set is retired: a
// run that had loaded it but not yet taken a session goes back for the new
// one, runs already on its sessions finish there (or are abandoned at their
// deadline, as always), and its sessions are destroyed once every one of
// them is back in its pool, so never under a native call. The request path
// pays one atomic load for cur and one for the retired flag.

// ErrContract is wrapped by Replace when the new model's inputs or outputs
// (names, dtypes, shapes) or the input ranges it declares differ from those
// of the model in service.
var ErrContract = errors.New("model contract differs from the model in service")

// ErrReplacing is returned by Replace while another Replace of the same
// backend is under way.
var ErrReplacing = errors.New("another replacement of this backend is under way")

// Swap is what a Replace did.
type Swap struct {
	// Old is the model taken out of service; New the model now in service.
	Old, New ModelInfo
	// Load is the time spent loading and warming New, before the swap.
	Load time.Duration
	// OldClosed reports that the old model's sessions are destroyed: its
	// last run in flight had returned. False when ctx ended first: the old
	// model serves nothing more, and the next Replace or Close destroys its
	// sessions once its runs have returned.
	OldClosed bool
}

// Replace puts the model in the file at path in service in place of the
// backend's model, with the backend's Config: it loads and warms the new
// model first, on the caller's goroutine (ctx does not cut that short:
// ONNX Runtime cannot stop a session's creation), refuses it unless its
// contract is the same (ErrContract, naming the tensor), then swaps, so
// that every run that starts after the swap runs the new model. Runs in
// flight on the old model finish on it; Replace waits for them, until ctx
// ends at the latest (see Swap.OldClosed), and destroys the old sessions.
// Rolling back is a Replace with the previous file.
//
// A refusal (an error) changes nothing: the old model stays in service and
// the new one, if it loaded, is destroyed. After Close, Replace returns
// ErrClosed; while another Replace of b runs, ErrReplacing.
func (b *Backend) Replace(ctx context.Context, path string) (Swap, error) {
	if !b.replacing.CompareAndSwap(false, true) {
		return Swap{}, fmt.Errorf("backend %s: replace with %s: %w: wait for it to return", b.cfg.Name, path, ErrReplacing)
	}
	defer b.replacing.Store(false)
	if b.closed.Load() {
		return Swap{}, fmt.Errorf("backend %s: replace with %s: %w", b.cfg.Name, path, ErrClosed)
	}
	if b.w != nil {
		return b.w.replace(ctx, path)
	}
	t0 := time.Now()
	next, err := b.load(path)
	if err != nil {
		return Swap{}, fmt.Errorf("%w; not replaced: the model in service is unchanged", err)
	}
	old := b.cur.Load() // only Replace stores cur, and only one runs
	if err := contractChange(&old.info.Model, &next.info.Model); err != nil {
		err = fmt.Errorf("backend %s: replace %s with %s: %w; not replaced: the model in service is unchanged", b.cfg.Name, old.info.Model.Path, path, err)
		return Swap{}, errors.Join(err, discard(next))
	}
	sw := Swap{Old: old.info.Model, New: next.info.Model, Load: time.Since(t0)}
	b.mu.Lock()
	if b.closed.Load() { // Close began while the new model loaded
		b.mu.Unlock()
		err := fmt.Errorf("backend %s: replace with %s: %w", b.cfg.Name, path, ErrClosed)
		return Swap{}, errors.Join(err, discard(next))
	}
	b.cur.Store(next)
	b.retired = append(b.retired, old)
	b.mu.Unlock()
	old.retire()
	b.closeRetired(ctx)
	sw.OldClosed = old.isDestroyed()
	return sw, nil
}

// discard destroys a set that never served.
func discard(g *sessionSet) error {
	g.retire()
	return g.close(context.Background()) // every session is in the pool: no wait
}

// closeRetired destroys the sessions of every retired set whose runs have
// all returned, newest first, waiting for the others until ctx ends.
func (b *Backend) closeRetired(ctx context.Context) {
	b.mu.Lock()
	sets := slices.Clone(b.retired)
	b.mu.Unlock()
	slices.Reverse(sets)
	for _, g := range sets {
		if g.close(ctx) != nil {
			break // ctx ended; Close, or the next Replace, goes on
		}
	}
	b.dropClosed()
}

// contractChange says how the next model's contract differs from that of
// the model in service: its inputs and outputs by position (name, dtype,
// shape), and the input ranges it declares, which the router checks
// requests against.
func contractChange(cur, next *ModelInfo) error {
	if cur.MaxBatch != next.MaxBatch {
		return fmt.Errorf("%w: max_batch %d, the model in service's is %d", ErrContract, next.MaxBatch, cur.MaxBatch)
	}
	if err := tensorsChange("input", cur.Inputs, next.Inputs); err != nil {
		return err
	}
	if err := tensorsChange("output", cur.Outputs, next.Outputs); err != nil {
		return err
	}
	for i, t := range cur.Inputs {
		c, n := rangeAt(cur.InputRanges, i), rangeAt(next.InputRanges, i)
		if (c == nil) != (n == nil) || (c != nil && *c != *n) {
			return fmt.Errorf("%w: input %q declares the range %s, the model in service %s (the router checks requests against it)", ErrContract, t.Name, rangeText(n), rangeText(c))
		}
	}
	return nil
}

func tensorsChange(kind string, cur, next []TensorInfo) error {
	if len(next) != len(cur) {
		return fmt.Errorf("%w: %d %ss (%s), the model in service has %d (%s)", ErrContract, len(next), kind, tensorNames(next), len(cur), tensorNames(cur))
	}
	for i := range cur {
		c, n := &cur[i], &next[i]
		switch {
		case n.Name != c.Name:
			return fmt.Errorf("%w: %s %d is %q, the model in service's is %q", ErrContract, kind, i, n.Name, c.Name)
		case n.DType != c.DType:
			return fmt.Errorf("%w: %s %q is %s, the model in service's is %s", ErrContract, kind, n.Name, n.DType, c.DType)
		case !sameShape(n.Shape, c.Shape):
			return fmt.Errorf("%w: %s %q has shape %v, the model in service's has %v", ErrContract, kind, n.Name, n.Shape, c.Shape)
		}
	}
	return nil
}

func rangeAt(rs []*Range, i int) *Range {
	if i < len(rs) {
		return rs[i]
	}
	return nil
}

func rangeText(r *Range) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("[%g, %g]", r.Min, r.Max)
}

// replacer is a Runner whose model can be replaced in place (*Backend);
// unwrapper a Runner that wraps another (*Faulty).
type (
	replacer interface {
		Replace(context.Context, string) (Swap, error)
	}
	unwrapper interface{ Unwrap() Runner }
)

// Replace puts the model in the file at path in service on rung b, as
// Backend.Replace does for the *Backend behind the rung (found through
// wrappers with an Unwrap method, such as *Faulty, which stay in place).
// Requests go on being served throughout: those that start after the swap
// run the new model, those in flight finish on the old one. The rung's
// Info, and with it the model name and version reported for its answers,
// is the new model's from the swap on. The refusals change nothing: an
// invalid rung, one with no model loaded, a router that is closing, and
// Backend.Replace's own.
func (r *Router) Replace(ctx context.Context, b watchdog.Backend, path string) (Swap, error) {
	if !b.Valid() {
		return Swap{}, fmt.Errorf("router: replace with %s: no rung %d (want primary, shadow or degraded)", path, int(b))
	}
	if r.closing.Load() {
		return Swap{}, fmt.Errorf("router: replace %s with %s: the router is closing: %w", b, path, ErrClosed)
	}
	run := r.backends[b]
	if run == nil {
		return Swap{}, fmt.Errorf("router: replace %s with %s: no model is loaded on this rung, and Replace only swaps a loaded one", b, path)
	}
	for {
		if rp, ok := run.(replacer); ok {
			sw, err := rp.Replace(ctx, path)
			if err != nil {
				return sw, fmt.Errorf("router: replace %s: %w", b, err)
			}
			return sw, nil
		}
		u, ok := run.(unwrapper)
		if !ok {
			return Swap{}, fmt.Errorf("router: replace %s with %s: its runner (%T) cannot replace its model", b, path, run)
		}
		run = u.Unwrap()
	}
}
