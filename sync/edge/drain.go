package edge

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
)

// The drain loop. Each stream has up to two lanes:
//
//   - the backlog lane packs from the stream's read position (next) in
//     order; its batches (inflight) are contiguous in read order from the
//     cursor, so the cursor moves through the acknowledged prefix of
//     them;
//   - the live lane exists while the stream drains a backlog that was
//     durable when the link came up: it packs the records appended since
//     (from liveNext) into batches of its own (live), sent ahead of the
//     backlog with LiveWindow of the window kept for it. The backlog lane
//     packs only below the first live batch; when it has nothing left
//     below it, it adopts that batch (acknowledged or not) as its next
//     one, so the cursor still moves only through a prefix that is
//     contiguous in read order. When the backlog lane reaches the live
//     lane's position with no live batch left, the live lane closes.
//
// Acknowledged live batches are kept (without payload, adjacent ones
// merged) until adopted, so they are not sent again; after a restart
// they are, and the sink answers duplicate.

type inflight struct {
	topic       string
	first, last uint64
	payload     []byte    // nil once acknowledged
	sentAt      time.Time // zero: to send (again) when connected
	deadline    time.Time // when it goes again without an ack
	acked       bool
	everSent    bool
	live        bool // packed by the live lane
	rejections  int  // times the ingester rejected it; each doubles its wait
	size        int  // payload bytes

	// For the pacer: sendings, and the connection and the delivered
	// bytes and time when it was first sent.
	sends       int
	gen         uint64
	delivered   int64
	deliveredAt time.Time
}

// timeout is how long b, sent now, waits for its ack before it goes
// again: the link's ack timeout (rto.go), or for a batch the ingester
// rejected, AckTimeout doubled with each rejection.
func (u *Uploader) timeout(b *inflight) time.Duration {
	if b.rejections == 0 {
		return u.rto.timeout()
	}
	d := u.cfg.AckTimeout
	for range b.rejections {
		if d >= u.cfg.RejectBackoffMax {
			break
		}
		d *= 2
	}
	return min(d, u.cfg.RejectBackoffMax)
}

type streamState struct {
	name     string
	topic    string
	cursor   uint64
	next     uint64      // backlog lane: records after it are not packed yet
	inflight []*inflight // backlog lane, contiguous in read order from cursor
	stats    StreamStats
	stalled  bool // the next record fits in no batch

	liveOn      bool
	liveNext    uint64      // live lane: records after it are not packed yet
	live        []*inflight // live lane, in seq order, all above next
	liveStalled bool
}

// sendResult is what became of a publication.
type sendResult int

const (
	sent      sendResult = iota
	linkDown             // paho refused: stop publishing this step
	throttled            // not enough bytes in the bucket yet
)

func unacked(list []*inflight) int {
	n := 0
	for _, b := range list {
		if !b.acked {
			n++
		}
	}
	return n
}

// resendAll marks every unacknowledged batch to be sent again.
func (st *streamState) resendAll() {
	for _, list := range [][]*inflight{st.inflight, st.live} {
		for _, b := range list {
			if !b.acked {
				b.sentAt = time.Time{}
			}
		}
	}
}

// below is the Outbox seen by the packer: Read returns only records with
// a sequence number under limit (no bound when limit is 0), and at most
// maxBytes of payload. The packer asks for as much as a batch body may
// hold (1 MiB) and shrinks what does not fit; reading that much for a
// batch of a few KiB made packing cost O(backlog) per batch.
type below struct {
	storage.Outbox
	limit    uint64
	maxBytes int
}

func (r below) Read(stream string, after uint64, maxRecords, maxBytes int) ([]storage.Record, error) {
	if r.limit != 0 && after+1 >= r.limit {
		return nil, nil
	}
	if r.maxBytes > 0 {
		maxBytes = min(maxBytes, r.maxBytes)
	}
	recs, err := r.Outbox.Read(stream, after, maxRecords, maxBytes)
	if r.limit != 0 {
		for i, rec := range recs {
			if rec.Seq >= r.limit {
				recs = recs[:i]
				break
			}
		}
	}
	return recs, err
}

// durableHigh is the highest durable sequence number of stream: exact
// from a *storage.Store, else estimated from the cursor and the backlog's
// count (low when eviction left holes, which only starts the live lane
// early).
func (u *Uploader) durableHigh(stream string) (uint64, bool) {
	type streamer interface {
		Stream(name string) *storage.Stream
	}
	if s, ok := u.outbox.(streamer); ok {
		if h := s.Stream(stream); h != nil {
			return h.Durable(), true
		}
	}
	c, err := u.outbox.Cursor(stream)
	if err != nil {
		return 0, false
	}
	b, err := u.outbox.Backlog(stream)
	if err != nil {
		return 0, false
	}
	return c + b.Records, true
}

// startLive opens the live lane of st when the link comes up with a
// backlog not packed yet: records durable from now on go in the live
// lane.
func (u *Uploader) startLive(st *streamState) {
	if u.cfg.LiveWindow == 0 || st.liveOn || st.stalled {
		return
	}
	high, ok := u.durableHigh(st.name)
	if !ok || high <= st.next {
		return
	}
	st.liveOn, st.liveNext, st.liveStalled = true, high, false
}

// pump is the drain loop: it owns the per-stream state.
func (u *Uploader) pump() {
	defer u.wg.Done()
	var streams []*streamState
	for _, name := range u.outbox.Streams() {
		c, err := u.outbox.Cursor(name)
		st := &streamState{name: name, topic: StreamTopic(u.cfg.Vehicle, name), cursor: c, next: c}
		st.stats.Stream = name
		if err != nil {
			st.stats.LastError = err.Error()
		}
		streams = append(streams, st)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var epoch uint64
	for {
		durable := u.outbox.DurableChanged()
		if e := u.epoch.Load(); e != epoch && u.online.Load() {
			// A new connection: everything in flight goes again, what
			// is durable now is the backlog, and the link is measured
			// anew.
			epoch = e
			u.pace.reset(u.clock.Now())
			u.rto.acked()
			for _, st := range streams {
				st.resendAll()
				u.startLive(st)
			}
		}
		wake := u.step(streams)
		u.publishStats(streams)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wake)
		select {
		case <-u.stop:
			return
		case <-durable:
		case <-timer.C:
		case <-u.connected:
		case <-u.syncPump:
			if u.online.Load() {
				u.rto.acked()
				for _, st := range streams {
					st.resendAll()
				}
			}
		case <-u.ingestUp:
			if u.online.Load() {
				u.ingestOnce.Add(1)
				u.rto.acked()
				for _, st := range streams {
					st.resendAll()
				}
			}
		case a := <-u.acks:
			u.applyAck(streams, a)
			// Take whatever else has arrived before stepping.
			for more := true; more; {
				select {
				case a := <-u.acks:
					u.applyAck(streams, a)
				default:
					more = false
				}
			}
		}
	}
}

func (u *Uploader) applyAck(streams []*streamState, a batch.Ack) {
	// Whatever it says, the ingester answered: the backoff ends.
	u.rto.acked()
	if a.Status == batch.StatusRejected {
		n := 0
		for _, st := range streams {
			if st.name != a.Stream {
				continue
			}
			st.stats.Rejected++
			st.stats.LastError = "rejected: " + a.Reason
			for _, list := range [][]*inflight{st.inflight, st.live} {
				for _, b := range list {
					if !b.acked && b.first >= a.FirstSeq && b.last <= a.LastSeq {
						b.rejections++
						n = max(n, b.rejections)
					}
				}
			}
		}
		// Logged on the first rejection of a batch and then at each
		// doubling, as its resends slow down.
		if n&(n-1) == 0 {
			u.log.Error("batch rejected by the ingester", zap.String("stream", a.Stream),
				zap.Uint64("first", a.FirstSeq), zap.Uint64("last", a.LastSeq), zap.String("reason", a.Reason),
				zap.Int("rejections", n))
		}
		return
	}
	matched := false
	now := u.clock.Now()
	for _, st := range streams {
		if st.name != a.Stream {
			continue
		}
		for _, list := range [][]*inflight{st.inflight, st.live} {
			for _, b := range list {
				if !b.acked && b.first >= a.FirstSeq && b.last <= a.LastSeq {
					if b.sends == 1 { // Karn's rule: else the ack may answer either sending
						u.rto.sample(now.Sub(b.sentAt))
					}
					u.pace.acked(b, now)
					b.acked = true
					b.payload = nil
					matched = true
					st.stats.Acked++
				}
			}
		}
	}
	if !matched {
		u.ignored.Add(1)
	}
}

// step advances cursors, resends what timed out and fills the windows:
// the live lanes first (fresh records go ahead of every backlog, and get
// the bandwidth first), then the backlogs in stream priority order. It
// returns how long to sleep at most before the next step.
func (u *Uploader) step(streams []*streamState) time.Duration {
	wake := time.Hour
	for _, st := range streams {
		wake = min(wake, u.advance(st))
	}
	if !u.online.Load() {
		return max(wake, time.Millisecond)
	}
	s := stepper{u: u, now: u.clock.Now(), wake: wake, budget: u.pace.budget()}
	for _, st := range streams {
		for _, list := range [][]*inflight{st.inflight, st.live} {
			for _, b := range list {
				if !b.acked {
					s.inFlight += b.size
				}
			}
		}
	}
	for _, st := range streams {
		if st.liveOn {
			s.fillLive(st)
		}
	}
	for _, st := range streams {
		s.fillBacklog(st)
		// The backlog lane may have adopted acknowledged live batches:
		// the cursor moves through them now, not at the next wake-up.
		s.wake = min(s.wake, u.advance(st))
	}
	return max(s.wake, time.Millisecond)
}

// advance moves the cursor through the acknowledged prefix of the
// backlog lane and merges acknowledged live batches.
func (u *Uploader) advance(st *streamState) time.Duration {
	wake := time.Hour
	through := st.cursor
	n := 0
	for n < len(st.inflight) && st.inflight[n].acked {
		through = st.inflight[n].last
		n++
	}
	if through > st.cursor {
		if err := u.outbox.Ack(st.name, through); err != nil {
			st.stats.LastError = err.Error()
			u.log.Error("outbox ack failed", zap.String("stream", st.name), zap.Error(err))
			wake = time.Second
		} else {
			st.cursor = through
			clear(st.inflight[:n])
			st.inflight = st.inflight[n:]
			if st.stats.LastError != "" && !st.stalled {
				st.stats.LastError = ""
			}
		}
	}
	// Adjacent acknowledged live batches are contiguous in read order:
	// one entry says as much as two.
	out := st.live[:0]
	for _, b := range st.live {
		if k := len(out) - 1; k >= 0 && b.acked && out[k].acked {
			out[k] = &inflight{topic: b.topic, first: out[k].first, last: b.last, acked: true, everSent: true, live: true}
			continue
		}
		out = append(out, b)
	}
	clear(st.live[len(out):])
	st.live = out
	return wake
}

// stepper is one step's publishing: it stops at the first publication
// the link or the bucket refuses, so that nothing overtakes a live
// batch waiting for bandwidth.
type stepper struct {
	u       *Uploader
	now     time.Time
	wake    time.Duration
	blocked bool
	// inFlight is the payload bytes of every lane's unacknowledged
	// batches; the backlog lanes pack more only while it is under
	// budget (see pacer).
	inFlight, budget int
}

// send publishes b at QoS 1 without waiting for the PUBACK: only the
// ingester's ack counts.
func (s *stepper) send(st *streamState, b *inflight) bool {
	if s.blocked {
		return false
	}
	u := s.u
	if u.rate != nil {
		ok, wait := u.rate.take(len(b.payload), s.now)
		if !ok {
			s.blocked = true
			s.wake = min(s.wake, wait)
			return false
		}
	}
	t := u.cli().Publish(b.topic, 1, false, b.payload)
	select {
	case <-t.Done():
		if t.Error() != nil {
			u.log.Debug("publish failed", zap.Error(t.Error()))
			s.blocked = true
			return false
		}
	default:
	}
	b.sends++
	if b.sends == 1 {
		u.pace.sent(b)
	}
	if b.everSent {
		st.stats.Resent++
	} else {
		st.stats.Sent++
		if b.live {
			st.stats.LiveSent++
		}
	}
	st.stats.Bytes += uint64(len(b.payload))
	wait := u.timeout(b)
	b.sentAt, b.deadline = s.now, s.now.Add(wait)
	b.everSent = true
	s.wake = min(s.wake, wait)
	return true
}

// resend sends again what waited too long for its ack (or everything
// after a reconnect, an ingester coming online or SyncNow); a timeout
// backs the ack timeout off (see rto).
func (s *stepper) resend(st *streamState, list []*inflight) {
	for _, b := range list {
		if b.acked {
			continue
		}
		if b.sentAt.IsZero() || !s.now.Before(b.deadline) {
			if !b.sentAt.IsZero() && b.rejections == 0 {
				s.u.rto.expired(b.sentAt, s.now)
			}
			if !s.send(st, b) {
				return
			}
		}
		s.wake = min(s.wake, b.deadline.Sub(s.now))
	}
}

// pack packs the next batch of st after seq after from r; it returns nil
// when there is nothing to pack (or on an error, recorded).
func (s *stepper) pack(st *streamState, r batch.Reader, after uint64, live bool) (*inflight, bool) {
	u := s.u
	payload, h, _, err := u.nextBatch(r, st.name, after)
	var tooLarge *batch.TooLargeError
	if errors.As(err, &tooLarge) {
		// Never skipped: skipping would need an ack the cloud never
		// gave. Storage's MaxRecordBytes prevents it.
		st.stats.LastError = err.Error()
		if live {
			st.liveStalled = true // the backlog lane will reach it and stall
		} else {
			st.stalled = true
			u.log.Error("record fits in no batch; stream stalled", zap.Error(err))
		}
		return nil, false
	}
	if err != nil {
		st.stats.LastError = err.Error()
		u.log.Warn("read outbox", zap.String("stream", st.name), zap.Error(err))
		s.wake = min(s.wake, time.Second)
		return nil, false
	}
	if payload == nil {
		return nil, true
	}
	s.inFlight += len(payload)
	return &inflight{topic: st.topic, first: h.FirstSeq, last: h.LastSeq, payload: payload, live: live, size: len(payload)}, true
}

func (s *stepper) fillLive(st *streamState) {
	s.resend(st, st.live)
	for !s.blocked && !st.liveStalled && unacked(st.live) < s.u.cfg.LiveWindow {
		b, _ := s.pack(st, s.u.reader(0), st.liveNext, true)
		if b == nil {
			return
		}
		st.live = append(st.live, b)
		st.liveNext = b.last
		s.send(st, b)
	}
}

// reader is the outbox as the packer reads it, below limit (exclusive;
// 0: no bound): at most 8 MaxPayloads of payload for one batch, enough
// for records that compress 8 to 1.
func (u *Uploader) reader(limit uint64) below {
	return below{Outbox: u.outbox, limit: limit, maxBytes: 8 * u.cfg.MaxPayload}
}

// maxHeld bounds the backlog lane's batches held in memory: the
// unacknowledged ones and the acknowledged ones waiting behind them.
func (u *Uploader) maxHeld() int { return 8 * u.cfg.Window }

func (s *stepper) fillBacklog(st *streamState) {
	s.resend(st, st.inflight)
	u := s.u
	window := u.cfg.Window
	if st.liveOn {
		window -= u.cfg.LiveWindow
	}
	// Each stream may have one batch in flight over the budget, so that
	// a large backlog ahead of it in priority order slows it but does not
	// starve it.
	for !s.blocked && !st.stalled && unacked(st.inflight) < window && len(st.inflight) < u.maxHeld() &&
		(s.inFlight < s.budget || unacked(st.inflight) == 0) {
		var limit uint64 // exclusive; 0: none
		switch {
		case len(st.live) > 0:
			limit = st.live[0].first
		case st.liveOn:
			limit = st.liveNext + 1
		}
		b, ok := s.pack(st, u.reader(limit), st.next, false)
		if !ok {
			return
		}
		if b == nil {
			if len(st.live) > 0 {
				// Nothing left below the first live batch: it is next
				// in read order.
				a := st.live[0]
				st.live[0] = nil
				st.live = st.live[1:]
				st.inflight = append(st.inflight, a)
				st.next = a.last
				continue
			}
			if st.liveOn && st.next >= st.liveNext {
				// The backlog has caught up: one lane again.
				st.liveOn = false
				window = u.cfg.Window
				continue
			}
			return
		}
		st.inflight = append(st.inflight, b)
		st.next = b.last
		s.send(st, b)
	}
}

func (u *Uploader) publishStats(streams []*streamState) {
	out := make([]StreamStats, len(streams))
	backlog := false
	for i, st := range streams {
		s := st.stats
		s.Cursor = st.cursor
		s.InFlight = unacked(st.inflight) + unacked(st.live)
		out[i] = s
		if len(st.inflight) > 0 || len(st.live) > 0 || st.stalled {
			backlog = true
		} else if bl, err := u.outbox.Backlog(st.name); err == nil && bl.Records > 0 {
			backlog = true
		}
	}
	u.setBulk(streams)
	u.mu.Lock()
	u.streams, u.backlog = out, backlog
	u.paced = Stats{InFlightBudget: u.pace.budget(), MinAckRTT: u.pace.minRTT, DeliveryRate: u.pace.rate(),
		AckTimeout: u.rto.timeout(), SmoothedAckRTT: u.rto.srtt}
	u.mu.Unlock()
}
