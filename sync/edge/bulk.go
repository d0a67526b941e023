package edge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Bulk traffic (checkpoint uploads, and a model bundle's requests and
// the bytes they bring down) goes behind telemetry: PublishBulk and
// TakeBulk wait while the drain loop has work a bulk message would
// delay, then for their bytes in the rate bucket, leaving room in it for
// a live batch.

// bulkGate tells waitBulk when the drain loop is busy, and which
// durable records it had seen then: records durable since are news it
// has not acted on yet. Its wake channel is closed and replaced at every
// change (and at each connection), which wakes the waiting publishers.
type bulkGate struct {
	mu   sync.Mutex
	busy bool
	seen map[string]uint64 // stream → durable high at the drain loop's last step; nil before it
	wake chan struct{}
}

func (g *bulkGate) state() (bool, map[string]uint64, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wake == nil {
		g.wake = make(chan struct{})
	}
	return g.busy, g.seen, g.wake
}

func (g *bulkGate) set(busy bool, seen map[string]uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if busy != g.busy || g.seen == nil || !maps.Equal(seen, g.seen) {
		g.busy, g.seen = busy, seen
		g.notifyLocked()
	}
}

func (g *bulkGate) notify() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notifyLocked()
}

func (g *bulkGate) notifyLocked() {
	if g.wake != nil {
		close(g.wake)
	}
	g.wake = make(chan struct{})
}

// setBulk tells the gate, at each step of the drain loop, whether a bulk
// message would now delay telemetry: a stream catches up a backlog that
// was there when the link came up (its live lane is open), has durable
// records not yet sent, a full window, or a batch waiting to go again or
// sent more than once (a hole the cloud has not acknowledged). Stalled
// streams do not count: they send nothing until storage is fixed. A
// stream whose latest batch is in flight, acknowledged in one round
// trip, holds nothing back.
func (u *Uploader) setBulk(streams []*streamState) {
	busy := false
	seen := make(map[string]uint64, len(streams))
	for _, st := range streams {
		high, ok := u.durableHigh(st.name)
		if ok {
			seen[st.name] = high
		}
		if !st.stalled && (st.liveOn || ok && high > st.next || u.resending(st)) {
			busy = true
		}
	}
	u.bulk.set(busy, seen)
}

// resending says whether st has a full window, or an unacknowledged
// batch not sent yet, to send again, or sent more than once.
func (u *Uploader) resending(st *streamState) bool {
	n := 0
	for _, list := range [][]*inflight{st.inflight, st.live} {
		for _, b := range list {
			if b.acked {
				continue
			}
			n++
			if b.sentAt.IsZero() || b.sends > 1 {
				return true
			}
		}
	}
	return n >= u.cfg.Window
}

// unseen says whether records became durable after the drain loop's last
// step (seen): it has not sent them yet.
func (u *Uploader) unseen(seen map[string]uint64) bool {
	if seen == nil {
		return true
	}
	for name, high := range seen {
		if h, ok := u.durableHigh(name); ok && h > high {
			return true
		}
	}
	return false
}

// bulkReserve is the part of the rate bucket a bulk message of n bytes
// leaves for live batches: up to a quarter of the bucket.
func (u *Uploader) bulkReserve(n int) int {
	return max(0, min(u.cfg.MaxPayload/4, u.cfg.MaxPayload-n))
}

// ErrClosed is wrapped by PublishBulk's and TakeBulk's error when the
// uploader closes.
var ErrClosed = errors.New("edge: uploader closed")

// PublishBulk publishes payload on topic at QoS 1, behind telemetry, and
// waits for the broker's PUBACK. It waits first as waitBulk says, for
// len(payload) bytes. A connection lost before the PUBACK is an error
// wrapping ErrOffline (the message may or may not have reached the
// broker); Close ends it with ErrClosed. It is for bulk uploads
// (checkpoints), whose own acknowledgements come from the cloud; payload
// may not exceed MaxPayload.
func (u *Uploader) PublishBulk(ctx context.Context, topic string, payload []byte) error {
	if topic == "" || strings.ContainsAny(topic, "+#\x00") {
		return fmt.Errorf("edge: publish bulk: bad topic %q", topic)
	}
	if len(payload) > u.cfg.MaxPayload {
		return fmt.Errorf("edge: publish bulk %s: %d bytes, more than max_payload %d", topic, len(payload), u.cfg.MaxPayload)
	}
	down, err := u.waitBulk(ctx, "publish bulk "+topic, len(payload))
	if err != nil {
		return err
	}
	return u.publishBulk(ctx, topic, payload, down)
}

// TakeBulk takes n bytes from the uplink's budget and publishes nothing:
// it is for bulk traffic that comes down the link at the vehicle's
// request (a model bundle's chunks), so that it shares the rate cap with
// what goes up. It waits as PublishBulk does before publishing, in
// pieces of at most three quarters of MaxPayload (the rate bucket's
// size), each waiting as waitBulk says: any n ends, and every piece
// leaves a quarter of the bucket for live batches. A piece once taken
// stays taken: when ctx ends or Close comes between pieces (ErrClosed),
// the bytes of those before are spent. n must be positive.
func (u *Uploader) TakeBulk(ctx context.Context, n int) error {
	if n <= 0 {
		return fmt.Errorf("edge: take bulk: %d bytes: want a positive count", n)
	}
	what := fmt.Sprintf("take bulk %d bytes", n)
	piece := max(1, u.cfg.MaxPayload-u.cfg.MaxPayload/4)
	for rest := n; rest > 0; rest -= piece {
		if _, err := u.waitBulk(ctx, what, min(rest, piece)); err != nil {
			return err
		}
	}
	return nil
}

// waitBulk waits, until ctx ends, for the link to be up, for the drain
// loop to have no backlog to catch up and no record waiting to be sent,
// and, under MaxBytesPerSecond, for n bytes in the rate bucket with up to
// a quarter of the bucket left for live batches (bulkReserve); then it
// takes them (never forced) and returns the connection's down channel.
// what names the caller's operation in its errors.
func (u *Uploader) waitBulk(ctx context.Context, what string, n int) (<-chan struct{}, error) {
	// A safety net for a missed wake-up; the gate normally wakes us.
	poll := time.NewTimer(time.Hour)
	defer poll.Stop()
	for {
		busy, seen, wake := u.bulk.state()
		u.linkMu.Lock()
		down := u.down
		u.linkMu.Unlock()
		wait := time.Duration(0)
		switch {
		case u.stopped():
			return nil, fmt.Errorf("edge: %s: %w", what, ErrClosed)
		case down == nil || !u.online.Load() || busy:
			wait = time.Second
		case u.unseen(seen):
			wait = 20 * time.Millisecond // the drain loop wakes for them
		case u.rate != nil:
			if ok, w := u.rate.takeLeaving(n, u.bulkReserve(n), u.clock.Now()); !ok {
				wait = w
			}
		}
		if wait == 0 {
			return down, nil
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("edge: %s: %w", what, ctx.Err())
		case <-u.stop:
		case <-wake:
		case <-poll.C:
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
	}
}

func (u *Uploader) publishBulk(ctx context.Context, topic string, payload []byte, down <-chan struct{}) error {
	t := u.cli().Publish(topic, 1, false, payload)
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			if errors.Is(err, mqtt.ErrNotConnected) {
				return fmt.Errorf("edge: publish bulk %s: %w", topic, ErrOffline)
			}
			return fmt.Errorf("edge: publish bulk %s: %w", topic, err)
		}
		return nil
	case <-down:
		return fmt.Errorf("edge: publish bulk %s: connection lost before the PUBACK: %w", topic, ErrOffline)
	case <-u.stop:
		return fmt.Errorf("edge: publish bulk %s: %w", topic, ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("edge: publish bulk %s: %w", topic, ctx.Err())
	}
}

// takeLeaving spends n bytes if the bucket holds them and reserve more;
// otherwise it spends nothing and says how long until it will (capped at
// the burst, so a wait always ends).
func (b *bucket) takeLeaving(n, reserve int, now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	need := min(float64(n+reserve), b.burst)
	if b.tokens >= need {
		b.tokens -= float64(n)
		return true, 0
	}
	wait := time.Duration((need - b.tokens) / b.rate * float64(time.Second))
	return false, max(wait, time.Millisecond)
}
