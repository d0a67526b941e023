package main

// The sync suite's cloud side, in a process of its own so that the bench
// process's CPU time is the vehicle's side alone: vigil-bench started
// again (os.Executable) with syncCloudEnv set to the broker's URL runs
// only this. It hosts what the vehicle does not: the emulated uplink's
// proxy, the baselines' bare subscriber, and each round's ingester and
// sink. The bench process (synccloudproc.go) sends it one request at a
// time, a JSON object a line on its stdin, and reads one reply a line on
// its stdout. It ends, closing whatever it runs, when its stdin closes
// (the bench process closed it, or died) or on SIGTERM or SIGINT.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/sink"
)

// syncCloudEnv, set in vigil-bench's environment, makes it the sync
// suite's cloud side for the broker at the URL it holds.
const syncCloudEnv = "VIGIL_BENCH_SYNC_CLOUD"

// The requests the cloud side answers (cloudRequest.Op).
const (
	opUplink     = "uplink"      // start the emulated uplink to Target; reply: URL
	opSubscribe  = "subscribe"   // a bare QoS 1 subscriber on Topic (replacing any earlier one)
	opExpect     = "expect"      // wait up to Timeout for Count batches, then drop the subscriber; reply: Got, GotBytes
	opIngest     = "ingest"      // a sink in SinkDir and an ingester into it, subscribed
	opIngestStop = "ingest-stop" // close the ingester; reply: its Stored, Duplicate, Failed
	opWatchAcks  = "watch-acks"  // an ackWatcher of Vehicle's acks of Stream of store Store (replacing any earlier one)
	opAcks       = "acks"        // reply: the acks it noted so far
	opUnwatch    = "unwatch"     // drop the ackWatcher
)

type cloudRequest struct {
	ID       uint64        `json:"id"` // echoed in the reply
	Op       string        `json:"op"`
	Target   string        `json:"target,omitempty"` // opUplink: the broker's host:port
	Mbps     float64       `json:"mbps,omitempty"`
	RTT      time.Duration `json:"rtt,omitempty"`
	Topic    string        `json:"topic,omitempty"`     // opSubscribe
	ClientID string        `json:"client_id,omitempty"` // opSubscribe, opIngest
	Count    int64         `json:"count,omitempty"`     // opExpect
	Timeout  time.Duration `json:"timeout,omitempty"`
	SinkDir  string        `json:"sink_dir,omitempty"` // opIngest
	Group    string        `json:"group,omitempty"`
	Vehicle  string        `json:"vehicle,omitempty"` // opWatchAcks
	Stream   string        `json:"stream,omitempty"`
	Store    uint64        `json:"store,omitempty"`
}

type cloudReply struct {
	ID        uint64  `json:"id"`
	Err       string  `json:"err,omitempty"`
	URL       string  `json:"url,omitempty"`
	Got       int64   `json:"got,omitempty"`
	GotBytes  int64   `json:"got_bytes,omitempty"`
	Stored    uint64  `json:"stored,omitempty"`
	Duplicate uint64  `json:"duplicate,omitempty"`
	Failed    uint64  `json:"failed,omitempty"`
	Acks      []ackAt `json:"acks,omitempty"`
}

// syncCloudMain is the whole of a vigil-bench started with syncCloudEnv
// set: it serves requests from in until in closes or a signal comes, and
// returns the exit code.
func syncCloudMain(broker string, in io.Reader, out, errOut io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	c := &cloudSide{broker: broker}
	defer c.close()
	reqs := make(chan cloudRequest)
	readErr := make(chan error, 1)
	// The reader is left blocked in a read when a signal ends the process.
	go func() {
		dec := json.NewDecoder(in)
		for {
			var req cloudRequest
			if err := dec.Decode(&req); err != nil {
				readErr <- err
				return
			}
			reqs <- req
		}
	}()
	enc := json.NewEncoder(out)
	for {
		select {
		case <-ctx.Done():
			return 0
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintf(errOut, "vigil-bench sync, cloud side: reading requests: %v\n", err)
			return 2
		case req := <-reqs:
			if err := enc.Encode(c.handle(ctx, req)); err != nil {
				fmt.Fprintf(errOut, "vigil-bench sync, cloud side: writing a reply: %v\n", err)
				return 2
			}
		}
	}
}

// cloudSide is what the cloud process runs.
type cloudSide struct {
	broker string
	ul     *uplink
	sub    *rawSubscriber
	in     *ingest.Ingester
	acks   *ackWatcher
}

func (c *cloudSide) handle(ctx context.Context, req cloudRequest) cloudReply {
	r := cloudReply{ID: req.ID}
	var err error
	switch req.Op {
	case opUplink:
		r.URL, err = c.startUplink(req)
	case opSubscribe:
		c.dropSubscriber()
		c.sub, err = subscribeRaw(c.broker, req.Topic, req.ClientID)
	case opExpect:
		r.Got, r.GotBytes, err = c.expect(ctx, req.Count, req.Timeout)
	case opIngest:
		err = c.startIngest(ctx, req)
	case opIngestStop:
		r.Stored, r.Duplicate, r.Failed, err = c.stopIngest()
	case opWatchAcks:
		c.unwatch()
		c.acks, err = watchAcks(c.broker, req.Vehicle, req.Stream, req.Store)
	case opAcks:
		if c.acks == nil {
			err = errors.New("no ack watcher")
		} else {
			r.Acks = c.acks.seen()
		}
	case opUnwatch:
		c.unwatch()
	default:
		err = fmt.Errorf("unknown request %q", req.Op)
	}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

func (c *cloudSide) startUplink(req cloudRequest) (string, error) {
	if c.ul != nil {
		return "", errors.New("the uplink is already started")
	}
	ul, err := startUplink(req.Target, req.Mbps, req.RTT)
	if err != nil {
		return "", err
	}
	c.ul = ul
	return ul.url(), nil
}

// expect waits for the subscriber to have count batches, or timeout, and
// drops it.
func (c *cloudSide) expect(ctx context.Context, count int64, timeout time.Duration) (int64, int64, error) {
	s := c.sub
	if s == nil {
		return 0, 0, errors.New("expect: no subscriber")
	}
	defer c.dropSubscriber()
	limit := time.NewTimer(timeout)
	defer limit.Stop()
	for s.got.Load() < count {
		select {
		case <-s.arrived:
		case <-limit.C:
			return s.got.Load(), s.gotBytes.Load(), fmt.Errorf("the subscriber got %d of %d batches within %v", s.got.Load(), count, timeout)
		case <-ctx.Done():
			return s.got.Load(), s.gotBytes.Load(), ctx.Err()
		}
	}
	return s.got.Load(), s.gotBytes.Load(), nil
}

func (c *cloudSide) dropSubscriber() {
	if c.sub != nil {
		c.sub.client.Disconnect(100)
		c.sub = nil
	}
}

// startIngest opens a sink in req.SinkDir and starts an ingester into it
// (req.ClientID, req.Group), returning once it has subscribed.
func (c *cloudSide) startIngest(ctx context.Context, req cloudRequest) error {
	if c.in != nil {
		return errors.New("an ingester is already running")
	}
	sk, err := sink.Open(req.SinkDir, sink.Options{})
	if err != nil {
		return err
	}
	in, err := ingest.New(ingest.Config{Broker: c.broker, ClientID: req.ClientID, Group: req.Group}, sk, nil)
	if err != nil {
		return err
	}
	if err := in.Start(ctx); err != nil {
		return err
	}
	c.in = in
	for deadline := time.Now().Add(10 * time.Second); !in.Stats().Subscribed; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.stopIngest() //nolint:errcheck // the subscription's failure is the one to report
			return errors.New("the ingester did not subscribe within 10 s")
		}
	}
	return nil
}

// stopIngest closes the ingester, which waits for the batches it is
// storing, and returns its counts.
func (c *cloudSide) stopIngest() (stored, duplicate, failed uint64, err error) {
	in := c.in
	if in == nil {
		return 0, 0, 0, errors.New("no ingester is running")
	}
	c.in = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = in.Close(ctx)
	s := in.Stats()
	return s.Stored, s.Duplicate, s.Failed, err
}

func (c *cloudSide) unwatch() {
	if c.acks != nil {
		c.acks.close()
		c.acks = nil
	}
}

func (c *cloudSide) close() {
	if c.in != nil {
		c.stopIngest() //nolint:errcheck // the process is ending
	}
	c.unwatch()
	c.dropSubscriber()
	if c.ul != nil {
		c.ul.close()
	}
}

// rawSubscriber is the baselines' receiving end: a bare paho client
// subscribed at QoS 1 on its own connection, counting what arrives.
type rawSubscriber struct {
	client        mqtt.Client
	got, gotBytes atomic.Int64
	arrived       chan struct{}
}

func subscribeRaw(broker, topic, clientID string) (*rawSubscriber, error) {
	s := &rawSubscriber{arrived: make(chan struct{}, 1)}
	s.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(clientID).SetCleanSession(true).SetAutoReconnect(false))
	if t := s.client.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("subscriber connect: %v", tokenErr(t))
	}
	t := s.client.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		s.gotBytes.Add(int64(len(m.Payload())))
		s.got.Add(1)
		select {
		case s.arrived <- struct{}{}:
		default:
		}
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		s.client.Disconnect(0)
		return nil, fmt.Errorf("subscribe to %s: %v", topic, tokenErr(t))
	}
	return s, nil
}
