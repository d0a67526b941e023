package bundlelink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// download is one Fetch in progress: the index, then the chunks.
type download struct {
	f    *Fetcher
	hash string
	tag  uint32 // this Fetch's requests'
	st   *staging
	last time.Time // when something new last arrived (the stall clock)
	// pubErr is the link's last refusal of a request, for ErrStalled's
	// message.
	pubErr error
	// Chunk requests are published in the background (publishChunks), so
	// that a request's wait for its acknowledgement does not hold back
	// the next: pubs counts them, pubErrs brings their errors back.
	pubs    sync.WaitGroup
	pubErrs chan error

	// the index being put together
	parts   map[int][]byte
	partSum string // the index document's SHA-256 its parts carry
	nparts  int

	// the chunks being fetched
	reqs    []*request
	again   map[int]bool // chunks to ask for again at once (damaged)
	corrupt map[int]int  // damaged copies per chunk; -1: the index
	staged  []int        // written, not yet committed
}

// request is a request for chunks awaiting its answers.
type request struct {
	first, n int
	due      time.Time
}

// errRetry says the fleet side cannot serve now: ask again at the
// timeout.
var errRetry = errors.New("unavailable")

// publish sends a request through the link, after taking from the link's
// budget the take bytes the request will bring (see Link). The link
// waits (for a connection, behind telemetry, for its budget) until the
// download would stall at most.
func (d *download) publish(ctx context.Context, t Type, first, n, take int) error {
	b, err := d.request(t, first, n)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithDeadline(ctx, d.last.Add(d.f.cfg.StallTimeout))
	defer cancel()
	if take > 0 {
		err = d.f.cfg.Link.TakeBulk(pctx, take)
	}
	if err == nil {
		err = d.f.cfg.Link.PublishBulk(pctx, RequestTopic(d.f.cfg.Vehicle), b)
	}
	if err != nil {
		if ctx.Err() == nil && pctx.Err() != nil {
			return d.stalled(d.last.Add(d.f.cfg.StallTimeout))
		}
		d.pubErr = err
		return err
	}
	d.f.count(func(p *Progress) { p.Requests++ })
	return nil
}

// request encodes a request.
func (d *download) request(t Type, first, n int) ([]byte, error) {
	return Encode(Envelope{Type: t, Tag: d.tag, Bundle: d.hash, ChunkBytes: d.chunkBytes(), Index: first, Count: n})
}

func (d *download) chunkBytes() int {
	if d.st != nil {
		return d.st.x.ChunkBytes
	}
	return d.f.cfg.ChunkBytes
}

// wait waits for an answer until due (or ctx): nil when none came.
func (d *download) wait(ctx context.Context, due time.Time) (*answer, error) {
	timer := time.NewTimer(max(due.Sub(d.f.clock.Now()), time.Millisecond))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case a := <-d.f.ans:
		return &a, nil
	case <-timer.C:
		return nil, nil
	}
}

// stalled is ErrStalled once nothing new arrived for StallTimeout.
func (d *download) stalled(now time.Time) error {
	if now.Sub(d.last) >= d.f.cfg.StallTimeout {
		why := "is the link up, and vigil-fleet serve running?"
		if d.pubErr != nil {
			why = "the last request was not published: " + d.pubErr.Error()
		}
		return fmt.Errorf("%w: bundle %.12s: nothing new for %v (%s); fetch again later: it resumes",
			ErrStalled, d.hash, d.f.cfg.StallTimeout, why)
	}
	return nil
}

// refusal turns a refusal into the error that ends the Fetch, or errRetry.
// A refusal of an earlier Fetch's request (another tag: it came late) is
// ignored; the store may hold the bundle again since.
func (d *download) refusal(e Envelope) error {
	if e.Tag != d.tag {
		d.f.count(func(p *Progress) { p.Ignored++ })
		return errRetry
	}
	detail := string(e.Data)
	d.f.log.Info("request refused by the fleet side", zap.String("bundle", d.hash), zap.Stringer("reason", e.Reason()), zap.String("detail", detail))
	switch e.Reason() {
	case ReasonUnknownBundle:
		return fmt.Errorf("%w: bundle %s: %s", ErrUnknownBundle, d.hash, detail)
	case ReasonUnavailable:
		return errRetry
	}
	return fmt.Errorf("bundle %.12s: the fleet side refused a request: %s: %s", d.hash, e.Reason(), detail)
}

// fetchIndex asks for the index, all of it at first, then for the parts
// that did not come, until it is whole and parses.
func (d *download) fetchIndex(ctx context.Context) (*Index, error) {
	d.parts, d.corrupt = map[int][]byte{}, map[int]int{}
	first, n := 0, MaxIndexParts
	for {
		if err := d.publish(ctx, TypeGetIndex, first, n, 0); errors.Is(err, ErrStalled) || ctx.Err() != nil {
			return nil, err
		} else if err != nil {
			d.f.log.Debug("bundle index request not published; again at its timeout", zap.String("bundle", d.hash), zap.Error(err))
		}
		due := d.f.clock.Now().Add(d.f.cfg.AnswerTimeout)
		for {
			a, err := d.wait(ctx, due)
			if err != nil {
				return nil, err
			}
			if a == nil {
				break
			}
			x, err := d.indexAnswer(a.env)
			if x != nil || err != nil && !errors.Is(err, errRetry) {
				return x, err
			}
		}
		now := d.f.clock.Now()
		if err := d.stalled(now); err != nil {
			return nil, err
		}
		d.f.count(func(p *Progress) { p.Timeouts++ })
		first, n = 0, MaxIndexParts
		if d.nparts > 0 { // the first run of missing parts
			for first = 0; d.parts[first] != nil; first++ {
			}
			for n = 1; first+n < d.nparts && d.parts[first+n] == nil; n++ {
			}
		}
	}
}

// indexAnswer takes an answer while the index is fetched: the index once
// its parts are all there, or an error that ends the Fetch.
func (d *download) indexAnswer(e Envelope) (*Index, error) {
	switch {
	case e.Type == TypeRefused:
		return nil, d.refusal(e)
	case e.Type != TypeIndex || e.ChunkBytes != d.f.cfg.ChunkBytes:
		d.f.count(func(p *Progress) { p.Ignored++ })
		return nil, nil
	}
	if e.SHA256 != d.partSum { // another document: start over with it
		d.parts, d.partSum, d.nparts = map[int][]byte{}, e.SHA256, e.Count
	}
	if d.parts[e.Index] == nil {
		d.parts[e.Index] = bytes.Clone(e.Data)
		d.last = d.f.clock.Now()
		d.f.count(func(p *Progress) { p.IndexParts++ })
	}
	if len(d.parts) < d.nparts {
		return nil, nil
	}
	doc := make([]byte, 0, d.nparts*e.ChunkBytes)
	for k := range d.nparts {
		doc = append(doc, d.parts[k]...)
	}
	if sum := sha256.Sum256(doc); fmt.Sprintf("%x", sum) != d.partSum {
		d.parts, d.partSum, d.nparts = map[int][]byte{}, "", 0
		d.f.count(func(p *Progress) { p.Corrupt++ })
		if d.corrupt[-1]++; d.corrupt[-1] >= d.f.cfg.MaxCorrupt {
			return nil, fmt.Errorf("%w: bundle %.12s: the index came damaged %d times", ErrCorrupt, d.hash, d.corrupt[-1])
		}
		return nil, errRetry
	}
	x, err := ParseIndex(doc, d.hash, d.f.cfg.ChunkBytes)
	if err != nil {
		return nil, fmt.Errorf("bundle %.12s: the fleet side's index: %w", d.hash, err)
	}
	m := x.Manifest
	d.f.count(func(p *Progress) {
		p.Name, p.Version, p.Chunks, p.Bytes = m.Name, m.Version, len(x.Spans), Size(m)
	})
	return x, nil
}

// fetchChunks asks for the chunks not staged, Window requests at a time,
// each for a run of them up to MaxChunkBytes, until every chunk is
// staged.
func (d *download) fetchChunks(ctx context.Context) error {
	d.again, d.corrupt, d.last = map[int]bool{}, map[int]int{}, d.f.clock.Now()
	d.pubErrs = make(chan error, 1)
	pctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		d.pubs.Wait()
	}()
	ctx = pctx
	for !d.st.p.Complete {
		if err := d.takeAnswers(ctx); err != nil {
			return err
		}
		if d.st.p.Complete {
			break
		}
		now := d.f.clock.Now()
		due := d.expire(now)
		if err := d.stalled(now); err != nil {
			return err
		}
		if len(d.reqs) < d.f.cfg.Window {
			if first, n, size := d.nextRun(); n > 0 {
				if err := d.ask(ctx, first, n, size); err != nil {
					return err
				}
				continue
			}
		}
		a, err := d.wait(ctx, earliest(due, d.last.Add(d.f.cfg.StallTimeout)))
		if err != nil {
			return err
		}
		if a != nil {
			if err := d.chunkAnswer(*a); err != nil {
				return err
			}
		}
	}
	return nil
}

// ask requests chunks [first, first+n): it takes their size bytes from
// the link's budget (which paces the requests to the rate cap and holds
// them behind telemetry), then publishes the request in the background,
// so that the next request need not wait for this one's acknowledgement
// (a round trip each would cap the download at a window per round trip).
// A publication the link lost is not an error: the request's timeout
// asks again.
func (d *download) ask(ctx context.Context, first, n, size int) error {
	b, err := d.request(TypeGetChunks, first, n)
	if err != nil {
		return err
	}
	stall := d.last.Add(d.f.cfg.StallTimeout)
	tctx, cancel := context.WithDeadline(ctx, stall)
	err = d.f.cfg.Link.TakeBulk(tctx, size)
	expired := tctx.Err() != nil
	cancel()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case expired:
		return d.stalled(stall)
	case err != nil:
		d.pubErr = err
		d.f.log.Debug("bundle request not published; again at its timeout", zap.String("bundle", d.hash), zap.Error(err))
	default:
		d.pubs.Add(1)
		go d.publishChunks(ctx, stall, b)
	}
	d.reqs = append(d.reqs, &request{first: first, n: n, due: d.f.clock.Now().Add(d.f.cfg.AnswerTimeout)})
	for i := first; i < first+n; i++ {
		delete(d.again, i)
	}
	return nil
}

// publishChunks publishes a chunk request until stall at most; an error
// goes back to the download loop (the latest only: it is for messages).
func (d *download) publishChunks(ctx context.Context, stall time.Time, b []byte) {
	defer d.pubs.Done()
	pctx, cancel := context.WithDeadline(ctx, stall)
	defer cancel()
	if err := d.f.cfg.Link.PublishBulk(pctx, RequestTopic(d.f.cfg.Vehicle), b); err != nil {
		select {
		case d.pubErrs <- err:
		default:
		}
		return
	}
	d.f.count(func(p *Progress) { p.Requests++ })
}

// takeAnswers takes every answer already there, then commits what they
// staged.
func (d *download) takeAnswers(ctx context.Context) error {
	select {
	case err := <-d.pubErrs:
		if ctx.Err() == nil {
			d.pubErr = err
			d.f.log.Debug("bundle request not published; again at its timeout", zap.String("bundle", d.hash), zap.Error(err))
		}
	default:
	}
	for more := true; more; {
		select {
		case a := <-d.f.ans:
			if err := d.chunkAnswer(a); err != nil {
				return err
			}
		default:
			more = false
		}
	}
	return d.commit()
}

// chunkAnswer takes an answer while chunks are fetched.
func (d *download) chunkAnswer(a answer) error {
	e, x := a.env, d.st.x
	switch {
	case e.Type == TypeRefused:
		if err := d.refusal(e); !errors.Is(err, errRetry) {
			return err
		}
		return nil
	case e.Type != TypeChunk || e.ChunkBytes != x.ChunkBytes || e.Count != len(x.Spans):
		d.f.count(func(p *Progress) { p.Ignored++ })
		return nil
	case d.st.p.done(e.Index) || d.pending(e.Index):
		d.f.count(func(p *Progress) { p.Duplicates++ })
		return nil
	case a.damaged || e.SHA256 != x.Sum(e.Index) || len(e.Data) != x.Spans[e.Index].Size:
		return d.damaged(e)
	}
	if err := d.st.write(e.Index, e.Data); err != nil {
		d.commit() //nolint:errcheck // what was written before stays staged, if the disk lets it
		return diskError(err, x)
	}
	d.staged = append(d.staged, e.Index)
	d.last = d.f.clock.Now()
	return nil
}

func (d *download) pending(i int) bool {
	for _, k := range d.staged {
		if k == i {
			return true
		}
	}
	return false
}

// damaged refuses a chunk whose bytes are not the chunk table's, and has
// it asked for again at once.
func (d *download) damaged(e Envelope) error {
	d.f.count(func(p *Progress) { p.Corrupt++ })
	d.f.log.Warn("bundle chunk damaged; asking again", zap.String("bundle", d.hash), zap.Int("chunk", e.Index),
		zap.String("sha256", e.SHA256), zap.String("want", d.st.x.Sum(e.Index)))
	if d.corrupt[e.Index]++; d.corrupt[e.Index] >= d.f.cfg.MaxCorrupt {
		return fmt.Errorf("%w: bundle %.12s: chunk %d came damaged %d times", ErrCorrupt, d.hash, e.Index, d.corrupt[e.Index])
	}
	d.again[e.Index] = true
	return nil
}

// commit syncs and records the chunks staged since the last commit.
func (d *download) commit() error {
	if len(d.staged) == 0 {
		return nil
	}
	if err := d.st.commit(d.staged, d.f.clock.Now()); err != nil {
		return diskError(err, d.st.x)
	}
	n := len(d.staged)
	d.staged = d.staged[:0]
	done, bytes := d.st.ndone, d.st.bdone
	d.f.count(func(p *Progress) { p.Received += uint64(n); p.ChunksDone, p.BytesDone = done, bytes })
	return nil
}

// expire retires the requests all of whose chunks are staged, and those
// past their timeout (their missing chunks are asked for again); it
// returns the earliest timeout left.
func (d *download) expire(now time.Time) time.Time {
	due := now.Add(d.f.cfg.AnswerTimeout)
	keep := d.reqs[:0]
	for _, r := range d.reqs {
		missing := false
		for i := r.first; i < r.first+r.n && !missing; i++ {
			missing = !d.st.p.done(i)
		}
		switch {
		case !missing:
		case !now.Before(r.due):
			d.f.count(func(p *Progress) { p.Timeouts++ })
		default:
			keep = append(keep, r)
			due = earliest(due, r.due)
		}
	}
	d.reqs = keep
	return due
}

// nextRun finds the first chunk neither staged nor awaited (or to be
// asked for again), and the run of such chunks after it that fits in
// MaxChunkBytes: its first chunk, length and bytes.
func (d *download) nextRun() (first, n, size int) {
	spans := d.st.x.Spans
	wanted := func(i int) bool { return !d.st.p.done(i) && (d.again[i] || !d.awaited(i)) }
	for first = d.st.from; first < len(spans) && !wanted(first); first++ {
	}
	for i := first; i < len(spans) && wanted(i) && size+spans[i].Size <= MaxChunkBytes; i++ {
		n++
		size += spans[i].Size
	}
	return first, n, size
}

func (d *download) awaited(i int) bool {
	for _, r := range d.reqs {
		if i >= r.first && i < r.first+r.n {
			return true
		}
	}
	return false
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
