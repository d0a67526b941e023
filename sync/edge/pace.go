package edge

import "time"

// The in-flight budget. A fixed window of batches is either too small for
// a fast link with a long round trip (the link idles while the window
// waits for acks) or too large for a slow one (the batches queue in the
// link, and a live record sent ahead of the backlog waits behind them).
// So the backlog lanes share a budget of payload bytes in flight, sized
// from what the link has shown on this connection, in the manner of
// TCP's BBR:
//
//   - the lowest ack round trip seen (a batch's publish until the
//     ingester's ack of it: the path there and back, the batch's own
//     transmission and the cloud's storing of it), and
//   - the delivery rate, the highest of the recent samples, each the
//     bytes acknowledged between a batch's sending and its ack over that
//     time;
//
// and the budget is budgetGain times their product (the bytes the path
// holds with the link kept busy), between a floor of budgetFloor batches
// (enough on loopback, where the round trip is short) and Window batches.
// While the budget is what limits the rate, each ack raises the rate
// seen, so the budget grows by half about once a round trip until the
// link is the limit. A gain over 1 keeps the link busy through the jitter
// of the cloud's acks; the bytes over the product queue in the link, and
// a live batch waits behind them, which is why the gain is not 2 as in
// BBR (which paces its sending and this does not): on vigil-bench sync's
// emulated 20 Mbit/s uplink with 40 ms of round trip, 2 raised the live
// p99 from 116 to 149 ms for the same drain rate, and gained 0.5 to 4 %
// of drain rate at 50 and 100 Mbit/s. Live batches are counted in flight
// but not held back by the budget: they are small, and latency is theirs.
// And each stream may have one backlog batch in flight beyond it, so that
// a stream behind a large backlog in priority order is slowed, not
// starved.
//
// Only batches sent once are sampled: the ack of a batch sent twice may
// answer either sending. The lowest round trip is kept for the
// connection (a later, higher one could be queueing the budget itself
// caused); a new connection starts over from the floor.

// budgetFloor is the budget's floor in batches of MaxPayload, and
// budgetGain the budget over the measured bandwidth-delay product.
const (
	budgetFloor = 2
	budgetGain  = 1.5
)

// rateSamples is how many recent delivery-rate samples the highest is
// taken from.
const rateSamples = 16

type pacer struct {
	floor, ceil int    // bytes
	gen         uint64 // connections: a batch sent on an earlier one is not sampled

	minRTT      time.Duration // 0: no sample yet
	rates       [rateSamples]float64
	nrates      int
	delivered   int64     // payload bytes acknowledged on this connection
	deliveredAt time.Time // when delivered last grew; the connection's start before that
}

func newPacer(maxPayload, window int) *pacer {
	return &pacer{floor: min(budgetFloor, window) * maxPayload, ceil: window * maxPayload}
}

// reset starts over for a new connection.
func (p *pacer) reset(now time.Time) {
	*p = pacer{floor: p.floor, ceil: p.ceil, gen: p.gen + 1, deliveredAt: now}
}

// sent records b's first sending.
func (p *pacer) sent(b *inflight) {
	b.gen, b.delivered, b.deliveredAt = p.gen, p.delivered, p.deliveredAt
}

// acked records the ack of b, sent at b.sentAt.
func (p *pacer) acked(b *inflight, now time.Time) {
	p.delivered += int64(b.size)
	p.deliveredAt = now
	if b.sends != 1 || b.gen != p.gen {
		return
	}
	if rtt := now.Sub(b.sentAt); rtt > 0 && (p.minRTT == 0 || rtt < p.minRTT) {
		p.minRTT = rtt
	}
	if d := now.Sub(b.deliveredAt); d > 0 {
		p.rates[p.nrates%rateSamples] = float64(p.delivered-b.delivered) / d.Seconds()
		p.nrates++
	}
}

// rate is the delivery rate in bytes per second: the highest recent
// sample, 0 before the first.
func (p *pacer) rate() float64 {
	r := 0.0
	for _, s := range p.rates[:min(p.nrates, rateSamples)] {
		r = max(r, s)
	}
	return r
}

// budget is the payload bytes the backlog lanes may have in flight.
func (p *pacer) budget() int {
	r := p.rate()
	if p.minRTT == 0 || r == 0 {
		return p.floor
	}
	b := budgetGain * r * p.minRTT.Seconds()
	if b >= float64(p.ceil) {
		return p.ceil
	}
	return max(p.floor, int(b))
}
