package edge_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
)

// stored says whether the sink holds seq of stream for the rig's vehicle.
func (r *rig) stored(stream string, seq uint64) bool {
	for _, v := range r.sink.Report().Vehicles {
		if v.Vehicle != r.vehicle {
			continue
		}
		for _, s := range v.Streams {
			if s.Stream != stream {
				continue
			}
			for _, rg := range s.Stored {
				if rg.First <= seq && seq <= rg.Last {
					return true
				}
			}
		}
	}
	return false
}

// liveStream appends a record to stream every 10 ms until stopped, and
// notes when each was appended.
type liveStream struct {
	r      *rig
	stream string
	mu     sync.Mutex
	at     map[uint64]time.Time
	stop   chan struct{}
	done   chan struct{}
}

func (r *rig) live(stream string) *liveStream {
	l := &liveStream{r: r, stream: stream, at: map[uint64]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	st := r.store.Stream(stream)
	go func() {
		defer close(l.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			at := time.Now()
			r.appendN(stream, 1)
			l.mu.Lock()
			l.at[st.Assigned()] = at
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *liveStream) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// firstAfter is the first seq appended at or after t (0: none yet).
func (l *liveStream) firstAfter(t time.Time) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first uint64
	for seq, at := range l.at {
		if !at.Before(t) && (first == 0 || seq < first) {
			first = seq
		}
	}
	return first
}

// TestBrokerKilledLiveBothOrders: the broker is killed (SIGKILL, no
// persistence: sessions and retained messages gone) during a live
// stream and comes back; live records reach the cloud soon after its
// return whichever of the vehicle and the ingester reconnects first, and
// in the end every record is in the cloud once.
//
//   - vehicle first: the uploader reconnects within 200 ms and sends
//     what is in flight into a broker with no ingester subscribed; the
//     ingester (reconnect backoff 1 s, then 1.5 s) comes back about a
//     second later. Its online status makes the uploader send everything
//     again at once; before it, the fixed 10 s ack timeout held the live
//     records for up to 10 s.
//   - ingester first: the ingester reconnects within 200 ms; the
//     uploader waits out a backoff of 1.2 s (about 0.9 s after the
//     broker's return) and sends what is in flight on connecting.
//
// The ack timeout's cap is the old fixed timeout, 10 s, so that only
// the adaptive timeout and the ingester's presence can be quicker. The
// bound asserted in both orders is the goal, 2 s from the broker's
// return to the first record appended after it stored in the cloud
// (vigil-bench sync reports it as restart_to_live_ms).
func TestBrokerKilledLiveBothOrders(t *testing.T) {
	type order struct {
		name                   string
		down                   time.Duration // the outage
		vehicleMin, vehicleMax time.Duration // the uploader's reconnect backoff
		ingestMax              time.Duration // the ingester's
		vehicleFirst           bool
		bound                  time.Duration
	}
	for _, o := range []order{
		{"vehicle first", 1500 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, 1500 * time.Millisecond, true, 2 * time.Second},
		{"ingester first", 300 * time.Millisecond, 1200 * time.Millisecond, 1200 * time.Millisecond, 200 * time.Millisecond, false, 2 * time.Second},
	} {
		t.Run(o.name, func(t *testing.T) {
			r := newRig(t)
			in := r.startIngester("ingest-a", func(c *ingest.Config) { c.ReconnectMax = o.ingestMax })
			r.startUploader(func(c *edge.Config) {
				c.AckTimeout = 10 * time.Second
				c.ReconnectMin, c.ReconnectMax = o.vehicleMin, o.vehicleMax
			})
			l := r.live(storage.StreamEvents)
			defer l.halt()
			waitUntil(t, 10*time.Second, "live records stored", func() (bool, string) {
				s := l.firstAfter(time.Now().Add(-500 * time.Millisecond))
				return s > 20 && r.stored(storage.StreamEvents, s), fmt.Sprintf("seq %d", s)
			})

			connects, ingestConnects := r.up.Stats().Connects, in.Stats().Connects
			r.broker.Stop()
			time.Sleep(o.down)
			r.broker.Restart()
			back := time.Now()

			var vehicleAt, ingestAt time.Time
			var seq uint64
			var storedAt time.Time
			for deadline := back.Add(20 * time.Second); storedAt.IsZero(); time.Sleep(5 * time.Millisecond) {
				now := time.Now()
				if now.After(deadline) {
					t.Fatalf("no live record stored within 20 s of the broker's return: uploader %+v, ingester %+v", r.up.Stats(), in.Stats())
				}
				if vehicleAt.IsZero() && r.up.Stats().Connects > connects {
					vehicleAt = now
				}
				if ingestAt.IsZero() && in.Stats().Connects > ingestConnects && in.Stats().Subscribed {
					ingestAt = now
				}
				if seq == 0 {
					seq = l.firstAfter(back)
				}
				if seq != 0 && r.stored(storage.StreamEvents, seq) {
					storedAt = now
				}
			}
			took := storedAt.Sub(back)
			st := r.up.Stats()
			t.Logf("%s: vehicle back after %v, ingester after %v; record %d (the first appended after the return) stored %v after the broker's return; ingester online heard %d times, ack timeout now %v (smoothed round trip %v)",
				o.name, since(back, vehicleAt), since(back, ingestAt), seq, took.Round(time.Millisecond), st.IngesterOnline, st.AckTimeout, st.SmoothedAckRTT)
			if !vehicleAt.IsZero() && !ingestAt.IsZero() && vehicleAt.Before(ingestAt) != o.vehicleFirst {
				t.Fatalf("the test's timing failed: the %s reconnected first", map[bool]string{true: "vehicle", false: "ingester"}[vehicleAt.Before(ingestAt)])
			}
			if o.vehicleFirst && st.IngesterOnline == 0 {
				t.Errorf("the uploader never heard the ingester come online")
			}
			if took > o.bound {
				t.Errorf("the first live record after the broker's return was stored after %v, want at most %v", took, o.bound)
			}
			l.halt()
			r.waitDrained(20 * time.Second)
		})
	}
}

func since(t0, t time.Time) string {
	if t.IsZero() {
		return "(not seen)"
	}
	return t.Sub(t0).Round(time.Millisecond).String()
}
