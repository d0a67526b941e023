package edge

import (
	"testing"
	"time"
)

const testBatch = 128 << 10

func TestPacerFloorBeforeSamples(t *testing.T) {
	p := newPacer(testBatch, 16)
	p.reset(time.Unix(0, 0))
	if got := p.budget(); got != budgetFloor*testBatch {
		t.Errorf("budget before any ack = %d, want the floor %d", got, budgetFloor*testBatch)
	}
	// A window smaller than the floor is the floor and the ceiling.
	small := newPacer(testBatch, 1)
	if got := small.budget(); got != testBatch {
		t.Errorf("window 1: budget %d, want %d", got, testBatch)
	}
}

// TestPacerSamplesOnlyFirstSendings: the ack of a batch sent twice, or
// sent on an earlier connection, says nothing about this connection's
// round trip.
func TestPacerSamplesOnlyFirstSendings(t *testing.T) {
	t0 := time.Unix(100, 0)
	p := newPacer(testBatch, 16)
	p.reset(t0)

	resent := &inflight{size: 1000}
	send(p, resent, t0)
	resent.sends++ // sent again
	p.acked(resent, t0.Add(10*time.Millisecond))
	if p.minRTT != 0 || p.rate() != 0 {
		t.Errorf("a resent batch was sampled: min RTT %v, rate %g", p.minRTT, p.rate())
	}

	old := &inflight{size: 1000}
	send(p, old, t0)
	p.reset(t0.Add(time.Second)) // a new connection
	p.acked(old, t0.Add(time.Second+time.Millisecond))
	if p.minRTT != 0 || p.rate() != 0 {
		t.Errorf("a batch of the last connection was sampled: min RTT %v, rate %g", p.minRTT, p.rate())
	}

	b := &inflight{size: 50000}
	send(p, b, t0.Add(2*time.Second))
	p.acked(b, t0.Add(2*time.Second+50*time.Millisecond))
	if p.minRTT != 50*time.Millisecond {
		t.Errorf("min RTT %v, want 50ms", p.minRTT)
	}
	// Delivered since the batch went: its own 50000 bytes, over the time
	// since the last delivery before it went (the old batch's ack, 1.049 s
	// before this one's).
	if want := 50000 / 1.049; p.rate() < want*0.999 || p.rate() > want*1.001 {
		t.Errorf("rate %g, want %g", p.rate(), want)
	}
}

func send(p *pacer, b *inflight, at time.Time) {
	b.sends++
	if b.sends == 1 {
		p.sent(b)
	}
	b.sentAt = at
}

// simLink plays the uploader's use of the budget against a link: batches
// of size bytes go while the bytes in flight are under the budget; the
// link carries them one after another at rate bytes a second, each taking
// delay to get there, and the ack takes delay back (plus storing, at the
// other end). It returns the budget at the end and the link's use, the
// bytes acknowledged over the time against rate.
func simLink(t *testing.T, rate float64, delay, storing time.Duration, size, batches int) (budget int, use float64) {
	t.Helper()
	p := newPacer(testBatch, DefaultWindow)
	t0 := time.Unix(1000, 0)
	now, linkFree := t0, t0
	p.reset(now)
	type pending struct {
		b  *inflight
		at time.Time // its ack arrives
	}
	var flight []pending
	inFlight, sent, acked := 0, 0, 0
	for acked < batches {
		for sent < batches && inFlight < p.budget() {
			b := &inflight{size: size}
			send(p, b, now)
			start := now
			if linkFree.After(start) {
				start = linkFree
			}
			linkFree = start.Add(time.Duration(float64(size) / rate * float64(time.Second)))
			flight = append(flight, pending{b, linkFree.Add(2*delay + storing)})
			inFlight += size
			sent++
		}
		next := flight[0]
		flight = flight[1:]
		now = next.at
		p.acked(next.b, now)
		inFlight -= size
		acked++
	}
	return p.budget(), float64(acked*size) / now.Sub(t0).Seconds() / rate
}

// TestPacerFillsALongFatLink: on 50 Mbit/s with 40 ms of round trip the
// floor of two batches keeps the link idle most of the time; the budget
// grows until the link is busy, and stays near 1.5 times what the path
// holds.
func TestPacerFillsALongFatLink(t *testing.T) {
	const rate = 50e6 / 8
	const size = 96 << 10
	budget, use := simLink(t, rate, 20*time.Millisecond, 5*time.Millisecond, size, 400)
	// What the path holds: a batch's own transmission, the round trip and
	// the storing, at the link's rate.
	bdp := rate * (float64(size)/rate + 0.045)
	if float64(budget) < bdp || float64(budget) > 2*bdp {
		t.Errorf("budget %d B, want between 1 and 2 times the bandwidth-delay product %.0f B", budget, bdp)
	}
	if use < 0.9 {
		t.Errorf("the link was busy %.0f%% of the time, want at least 90%%", 100*use)
	}
	floorUse := 2 * size / (rate * (float64(size)/rate + 0.045))
	t.Logf("budget %d B (%.1f batches), link use %.2f; the floor alone would use %.2f", budget, float64(budget)/size, use, floorUse)
}

// TestPacerStaysAtTheFloorOnAShortLink: a link whose round trip is short
// against a batch needs no more than the floor, and does not get it.
func TestPacerStaysAtTheFloorOnAShortLink(t *testing.T) {
	budget, use := simLink(t, 20e6/8, 500*time.Microsecond, time.Millisecond, 96<<10, 200)
	if budget != budgetFloor*testBatch {
		t.Errorf("budget %d B, want the floor %d", budget, budgetFloor*testBatch)
	}
	if use < 0.9 {
		t.Errorf("the link was busy %.0f%% of the time, want at least 90%%", 100*use)
	}
}

// TestPacerCeiling: however long the path, the budget stops at Window
// batches.
func TestPacerCeiling(t *testing.T) {
	budget, _ := simLink(t, 1e9/8, 200*time.Millisecond, 0, 96<<10, 400)
	if budget != DefaultWindow*testBatch {
		t.Errorf("budget %d B, want the ceiling %d", budget, DefaultWindow*testBatch)
	}
}
