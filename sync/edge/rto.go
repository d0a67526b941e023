package edge

import "time"

// The ack timeout. How long a batch waits for the ingester's ack before
// it goes again follows the link, as TCP's retransmission timeout does
// (RFC 6298): a fixed timeout long enough for a slow link leaves a batch
// lost on a fast one (published while no ingester was subscribed, after
// a broker restart) unsent for that long, and its slot in the window
// with it, while one short enough for a fast link floods a slow one
// with resends.
//
//   - Each ack of a batch sent once (Karn's rule: the ack of a batch sent
//     twice may answer either sending) is a round-trip sample R: the
//     first sets SRTT = R and RTTVAR = R/2, later ones RTTVAR = 3/4 RTTVAR
//   - 1/4 |SRTT - R| and then SRTT = 7/8 SRTT + 1/8 R.
//   - The timeout is SRTT + max(G, 4 RTTVAR), between a floor
//     (Config.AckTimeoutMin, 500 ms: an ingester's fsyncs jitter, and a
//     resend too early is a duplicate) and a cap (Config.AckTimeout,
//     10 s); 1 s (or the cap, if lower) before the first sample.
//   - When a batch's timeout expires it goes again and the timeout
//     doubles, up to the cap, while nothing is acknowledged: once per
//     round of resends, not once per batch, so a window lost at once
//     doubles it once (a batch sent before the last doubling does not
//     double it again). Any ack (stored, duplicate or even rejected:
//     the ingester is there) ends the backoff, and so do a new
//     connection, an ingester coming online and SyncNow, after which
//     everything in flight goes again anyway.
//
// rto is pure: the drain loop passes the times in.
type rto struct {
	floor, ceil time.Duration

	sampled      bool
	srtt, rttvar time.Duration
	shift        uint      // doublings since the backoff last ended
	backedAt     time.Time // when it last doubled
}

// rtoInitial is the timeout before the first sample (RFC 6298's 1 s),
// and rtoGranularity the G above.
const (
	rtoInitial     = time.Second
	rtoGranularity = time.Millisecond
)

func newRTO(floor, ceil time.Duration) *rto {
	return &rto{floor: min(floor, ceil), ceil: ceil}
}

// base is the timeout without the backoff.
func (r *rto) base() time.Duration {
	if !r.sampled {
		return max(r.floor, min(rtoInitial, r.ceil))
	}
	return min(max(r.srtt+max(rtoGranularity, 4*r.rttvar), r.floor), r.ceil)
}

// timeout is how long a batch sent now waits for its ack.
func (r *rto) timeout() time.Duration {
	d := r.base()
	for range r.shift {
		if d >= r.ceil/2 {
			return r.ceil
		}
		d *= 2
	}
	return d
}

// sample takes the round trip of a batch sent once, from its sending to
// its ack; it ends the backoff.
func (r *rto) sample(rtt time.Duration) {
	rtt = max(rtt, 0)
	if !r.sampled {
		r.sampled, r.srtt, r.rttvar = true, rtt, rtt/2
	} else {
		diff := r.srtt - rtt
		if diff < 0 {
			diff = -diff
		}
		r.rttvar = (3*r.rttvar + diff) / 4
		r.srtt = (7*r.srtt + rtt) / 8
	}
	r.shift = 0
}

// acked ends the backoff: the ingester answered.
func (r *rto) acked() { r.shift = 0 }

// expired says that a batch sent at sentAt timed out at now and goes
// again: the timeout doubles, unless the batch was sent before the last
// doubling (it is part of the round of losses that caused it).
func (r *rto) expired(sentAt, now time.Time) {
	if !r.backedAt.IsZero() && sentAt.Before(r.backedAt) {
		return
	}
	if r.timeout() < r.ceil {
		r.shift++
	}
	r.backedAt = now
}
