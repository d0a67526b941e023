package edge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest"
	"github.com/vigil-av/vigil/sync/sink"
)

// edgeDrained says, from the edge's side only, whether every record is
// durable and acknowledged (the sinks may be several: see verifySink).
func (r *rig) edgeDrained() (bool, string) {
	for _, ss := range r.store.Stats().Streams {
		if ss.Assigned != ss.Durable || ss.Cursor != ss.Durable {
			return false, fmt.Sprintf("%s: assigned %d, durable %d, cursor %d", ss.Name, ss.Assigned, ss.Durable, ss.Cursor)
		}
	}
	if s := r.up.State(); s != edge.Live {
		return false, s.String()
	}
	return true, ""
}

// verifySink reopens the sink from its directory (what every replica
// wrote, merged on recovery) and checks that every record is there
// once, unchanged, with no unexplained gap.
func (r *rig) verifySink() {
	r.t.Helper()
	r.openSink()
	r.checkExactlyOnce()
}

func (r *rig) proxiedIngester(sk *sink.Sink, id string) (*ingest.Ingester, *mqtttest.Proxy) {
	r.t.Helper()
	p := mqtttest.NewProxy(r.t, r.broker.Addr())
	in := r.startIngesterOn(sk, id, func(c *ingest.Config) { c.Broker = p.URL(false) })
	waitUntil(r.t, 10*time.Second, id+" subscribed", func() (bool, string) { return in.Stats().Subscribed, "" })
	return in, p
}

// TestIngesterReplicaKilledMidStream: two ingesters in one
// shared-subscription group, each with its own sink.Sink over one
// directory (as two replicas sharing storage would be), each behind a
// TCP proxy. Mid-drain, with records still being appended, one replica
// is killed abruptly: its connection reset, no DISCONNECT, and no
// reconnection possible. The other carries on alone; in the end every
// record is in the directory exactly once, with no unexplained gap.
func TestIngesterReplicaKilledMidStream(t *testing.T) {
	r := newRig(t)
	for _, s := range testStreams {
		r.appendN(s, 600)
	}
	skB, err := sink.Open(r.sinkDir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, pa := r.proxiedIngester(r.sink, "ingest-a")
	b, _ := r.proxiedIngester(skB, "ingest-b")
	r.startUploader()
	stop := make(chan struct{})
	wg := r.producer(stop, storage.StreamEvents, storage.StreamInference)
	waitUntil(t, 10*time.Second, "both replicas at work", func() (bool, string) {
		sa, sb := a.Stats(), b.Stats()
		return sa.Stored > 2 && sb.Stored > 2, fmt.Sprintf("a %+v, b %+v", sa, sb)
	})
	pa.Kill()
	killedAt := a.Stats()
	bAt := b.Stats()
	time.Sleep(200 * time.Millisecond) // batches keep coming
	close(stop)
	wg.Wait()
	r.waitDurable()
	waitUntil(t, 15*time.Second, "drain by the surviving replica", r.edgeDrained)
	sa, sb := a.Stats(), b.Stats()
	t.Logf("killed replica: at the kill %+v, now %+v; survivor %+v; uploader %+v", killedAt, sa, sb, r.up.Stats())
	if sb.Stored <= bAt.Stored {
		t.Errorf("the surviving replica stored nothing after the kill: %+v", sb)
	}
	if sa.Subscribed {
		t.Errorf("the killed replica is still subscribed: %+v", sa)
	}
	closeWithin(t, "killed ingester", a.Close)
	closeWithin(t, "surviving ingester", b.Close)
	r.verifySink()
}

// TestAcksLostOnTheIngesterSide: an ingester stores batches but its acks
// never reach the broker (what it sends is dropped), and it dies (its
// connection reset, no reconnection). A second ingester over the same
// sink takes over: the edge sends the batches again after its ack
// timeout, and they are answered duplicate. Nothing is lost.
func TestAcksLostOnTheIngesterSide(t *testing.T) {
	r := newRig(t)
	for _, s := range testStreams {
		r.appendN(s, 300)
	}
	a, p := r.proxiedIngester(r.sink, "ingest-a")
	r.startUploader()
	r.waitDrained(10 * time.Second)

	p.Blackhole(false, true) // what the ingester sends (acks included) vanishes
	before := a.Stats().Received
	for _, s := range testStreams {
		r.appendN(s, 100)
	}
	r.waitDurable()
	waitUntil(t, 10*time.Second, "batches stored, their acks lost", func() (bool, string) {
		s := a.Stats()
		return s.Received > before, fmt.Sprintf("%+v", s)
	})
	p.Kill()
	b := r.startIngester("ingest-b") // same sink: a replica of the same process
	r.waitDrained(20 * time.Second)
	waitUntil(t, 10*time.Second, "the dead ingester's ack publications failing", func() (bool, string) {
		s := a.Stats()
		return s.AckErrors > 0, fmt.Sprintf("%+v", s)
	})
	sa, sb := a.Stats(), b.Stats()
	t.Logf("dead ingester %+v; new one %+v; uploader %+v", sa, sb, r.up.Stats())
	if sb.Duplicate == 0 {
		t.Errorf("no duplicate ack: the batches whose acks were lost were not sent again (%+v)", sb)
	}
	var resent uint64
	for _, s := range r.up.Stats().Streams {
		resent += s.Resent
	}
	if resent == 0 {
		t.Error("the uploader sent nothing again")
	}
}

// TestEdgeSeveredAfterStore: what the broker sends the edge vanishes
// (acks, a command) while new batches are stored and acknowledged by the
// ingester; then the edge's connection is reset. Nothing is lost: the
// broker keeps the edge's persistent session and delivers again what was
// in flight to it, the edge sends again what it has no ack for (the sink
// answers duplicate), and the command queued in the session reaches its
// handler after the reconnection.
func TestEdgeSeveredAfterStore(t *testing.T) {
	r := newRig(t)
	for _, s := range testStreams {
		r.appendN(s, 300)
	}
	in := r.startIngester("ingest-a")
	waitUntil(t, 10*time.Second, "ingester subscribed", func() (bool, string) { return in.Stats().Subscribed, "" })
	p := mqtttest.NewProxy(t, r.broker.Addr())
	var got inbox
	cmdTopic := "vigil/v1/" + vehicle + "/cmd"
	r.startUploader(func(c *edge.Config) {
		c.Broker = p.URL(false)
		c.Subscriptions = []edge.Subscription{{Topic: cmdTopic, Handler: got.add}}
	})
	r.waitDrained(10 * time.Second)

	p.Blackhole(true, false)
	op := r.broker.Client(t, "operator", nil)
	if err := mqtttest.Publish(op, cmdTopic, []byte("stop"), false); err != nil {
		t.Fatal(err)
	}
	before := in.Stats().Stored
	for _, s := range testStreams {
		r.appendN(s, 100)
	}
	waitUntil(t, 10*time.Second, "batches acknowledged into the void", func() (bool, string) {
		s := in.Stats()
		return s.Stored > before, fmt.Sprintf("%+v", s)
	})
	if cursor := r.cursor(storage.StreamEvents); cursor != 301 && cursor != 300 {
		t.Logf("events cursor %d", cursor)
	}
	p.Sever()
	waitUntil(t, 10*time.Second, "queued command delivered", got.has(cmdTopic+" stop"))
	r.waitDrained(20 * time.Second)
	if c := r.up.Stats().Connects; c < 2 {
		t.Errorf("%d connections, want a reconnection", c)
	}
	t.Logf("ingester %+v; uploader %+v", in.Stats(), r.up.Stats())
}
