package main

// The sync suite: the edge uploader's drain of an offline backlog, with
// the cloud side (ingester and sink) and a Mosquitto on this machine.
//
// Records: the backlog is the daemon's 51-byte inference summaries only
// (agent/telemetry.go's layout, values drawn from the seq), the stream
// that holds one record per frame and so nearly all of a backlog; the
// store adds its own "storage.opened" notice in the events stream,
// which the drain clears too and the rates count. Live records are
// summaries as well, on --live-stream (inference by default, as the
// daemon's are). Each is timed to the ingester's ack covering it, seen by
// a subscriber of the vehicle's ack topic: when the record is stored in
// the cloud, which is what "live telemetry stale" means and what the
// RESULT line's live_p99_ms_during_drain reports (the uploader sends
// live records ahead of the backlog). On a line of its own each is also
// timed to the outbox cursor covering it, which moves through the stream
// in order, so that there a live record waits for the backlog before it.
//
// Baselines: the batches are packed from the round's own store with the
// uploader's Packer settings before the uploader runs, by the first
// baseline (read+pack+publish, timed); the second publishes those very
// bytes again with packing out of the timing (raw publish, the RESULT
// line's baseline). The timings of the raw runs and of the uploader both
// include the MQTT connection.

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
	"github.com/vigil-av/vigil/sync/ingest"
	"github.com/vigil-av/vigil/sync/mqtttest/mosquitto"
	"github.com/vigil-av/vigil/sync/sink"
)

// summaryBytes is the size of the daemon's per-request inference summary
// (agent/telemetry.go, version 1): the records the inference stream is
// made of, one per frame, and by far the most numerous the uploader
// drains.
const summaryBytes = 51

// defaultUplinkMbps is the emulated vehicle uplink the suite drains over
// unless --uplink says otherwise: an LTE-class link.
const defaultUplinkMbps = 20

type syncFlags struct {
	records      int
	rounds       int
	window       int
	liveWindow   int
	rawWindow    int
	maxPayload   int
	uncompressed bool
	liveRate     float64
	liveStream   string
	broker       string
	mosquitto    string
	nodelay      bool
	dir          string
	timeout      time.Duration
	quick        bool
	uplinkMbps   float64
	uplinkRTT    time.Duration

	restarts      int
	restartOutage time.Duration
}

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f syncFlags
	fs := flag.NewFlagSet("vigil-bench sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.records, "records", 300000, "inference summaries in the offline backlog of each round")
	fs.IntVar(&f.rounds, "rounds", 5, "rounds, each running the two raw baselines then the uploader on a freshly filled store")
	fs.IntVar(&f.window, "window", 0, "edge.Config.Window: the most batches in flight per stream (0: the uploader's default)")
	fs.IntVar(&f.liveWindow, "live-window", 0, "edge.Config.LiveWindow: the live lane's batches in flight (0: the uploader's default; negative: no live lane)")
	fs.IntVar(&f.rawWindow, "raw-window", 0, "QoS 1 publishes in flight in the baselines (0: --window, or the uploader's default Window, 16)")
	fs.IntVar(&f.maxPayload, "max-payload", 0, "edge.Config.MaxPayload: encoded batch bound in bytes (0: the default, 128 KiB)")
	fs.BoolVar(&f.uncompressed, "uncompressed", false, "edge.Config.UseNone: send batch bodies uncompressed (default: flate)")
	fs.Float64Var(&f.liveRate, "live-rate", 20, "live records appended per second while the backlog drains")
	fs.StringVar(&f.liveStream, "live-stream", storage.StreamInference, "stream the live records go to")
	fs.StringVar(&f.broker, "broker", "", "MQTT broker URL, e.g. tcp://127.0.0.1:1883 (default: start a Mosquitto on a free loopback port)")
	fs.StringVar(&f.mosquitto, "mosquitto", "", "mosquitto executable (default: mosquitto on PATH, then /usr/sbin/mosquitto)")
	fs.BoolVar(&f.nodelay, "tcp-nodelay", true, "set_tcp_nodelay in the started Mosquitto's configuration; false keeps Mosquitto's default, Nagle's algorithm, whose delayed-ACK stalls (up to 40 ms) slow both paths")
	fs.StringVar(&f.dir, "dir", "", "directory for the temporary stores, sinks and broker files (default: the system's temporary directory)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "longest a round's drain may take before the suite fails")
	fs.Float64Var(&f.uplinkMbps, "uplink", defaultUplinkMbps, "the vehicle's uplink, emulated: the raw publishers and the uploader reach the broker through a proxy limited to this many Mbit/s towards it (0: plain loopback, no proxy)")
	fs.DurationVar(&f.uplinkRTT, "uplink-rtt", 40*time.Millisecond, "round-trip time the --uplink proxy adds (half each way)")
	fs.IntVar(&f.restarts, "restarts", 5, "broker restarts timed after the drain rounds, each on a fresh store streaming live records (0: none; skipped with --broker, since they kill the broker)")
	fs.DurationVar(&f.restartOutage, "restart-outage", time.Second, "how long the broker stays down in each timed restart (killed with SIGKILL, then started again on the same port)")
	fs.BoolVar(&f.quick, "quick", false, "a short run (100000 records, 5 rounds, 3 broker restarts; about 45 s at the default uplink)")
	if err := parseSuite(fs, "sync", `Each round fills a fresh storage.Store (default configuration) with an offline
backlog of 51-byte inference summaries, then runs, on the same broker:
  raw read+pack+publish: a bare paho client reads the store, packs it with
    batch.Packer (the uploader's settings) and publishes each batch at QoS 1,
    with a window of publishes awaiting PUBACK, to a bare QoS 1 subscriber;
  raw publish: the same client publishes the very batches that run packed,
    packing untimed: the transport alone, the RESULT line's baseline;
  uploader: edge.Uploader drains the store into sync/ingest and a sync/sink,
    timed from Start until every stream's outbox cursor is at its last
    backlog seq, while live records are appended at --live-rate and each
    timed from append until the ingester's ack covers it, i.e. it is stored
    in the cloud (the RESULT line's figure), and, printed beside it, until
    the outbox cursor covers it.
ratio_vs_raw is the uploader's rate over the raw publish rate, the median of
the rounds'; the ratio against read+pack+publish is printed beside it.
The sink must hold every record exactly once, or the suite fails.

Then --restarts times, on a fresh store streaming live records at --live-rate
(no backlog) through the same uplink, the broker is killed (SIGKILL) and
started again on its port after --restart-outage; restart_to_live_ms is the
median time from its return (listening again) to the first live record the
ingester stores (a new one, not a duplicate of one stored before the kill).
Vehicle and ingester reconnect with their default backoffs (the vehicle's
jittered, from 500 ms doubling; the ingester's every second), so either may be
back first; each restart's line says which, and when every record appended
before the return was acknowledged.

The vehicle's side reaches the broker over an emulated uplink, 20 Mbit/s
with 40 ms of round trip by default (an LTE-class vehicle link), since a
backlog drains over such a link and the ratio says how much of it the
uploader uses. With --uplink 0 both sides use plain loopback: there the raw
publish moves bytes packed in advance at memory speed, so the ratio compares
the uploader's reading and compressing with a copy and stays far below 1
(0.04 to 0.07 on a 2-core VM); drain_records_per_s then measures the
uploader's CPU-bound pace, which decides how fast a faster link drains.`, args, stderr); err != nil {
		return err
	}
	if f.quick {
		f.records, f.rounds, f.restarts = 100000, 5, 3
	}
	streams := map[string]bool{}
	for _, s := range storage.DefaultStreams() {
		streams[s.Name] = true
	}
	switch {
	case f.records < 1:
		return fmt.Errorf("--records %d: need at least 1", f.records)
	case f.rounds < 1:
		return fmt.Errorf("--rounds %d: need at least 1", f.rounds)
	case f.window < 0 || f.rawWindow < 0:
		return fmt.Errorf("--window %d, --raw-window %d: must not be negative", f.window, f.rawWindow)
	case f.maxPayload < 0:
		return fmt.Errorf("--max-payload %d: must not be negative", f.maxPayload)
	case f.liveRate <= 0 || f.liveRate > 10000:
		return fmt.Errorf("--live-rate %g: want a rate in (0, 10000] per second", f.liveRate)
	case !streams[f.liveStream]:
		return fmt.Errorf("--live-stream %q: not one of the store's streams", f.liveStream)
	case f.timeout <= 0:
		return fmt.Errorf("--timeout %v: want a positive duration", f.timeout)
	case f.uplinkMbps < 0 || f.uplinkRTT < 0:
		return fmt.Errorf("--uplink %g, --uplink-rtt %v: must not be negative", f.uplinkMbps, f.uplinkRTT)
	case f.restarts < 0 || f.restartOutage < 0:
		return fmt.Errorf("--restarts %d, --restart-outage %v: must not be negative", f.restarts, f.restartOutage)
	}
	rawWindow := f.rawWindow
	if rawWindow == 0 {
		rawWindow = f.window
		if rawWindow == 0 {
			rawWindow = edge.DefaultWindow
		}
	}

	root, err := os.MkdirTemp(f.dir, "vigil-bench-sync-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	brokerURL, brokerWhat := f.broker, "given"
	var broker *mosquittoProc
	if brokerURL == "" {
		bin, err := findMosquitto(f.mosquitto)
		if err != nil {
			return err
		}
		m, err := startMosquitto(ctx, bin, filepath.Join(root, "broker"), f.nodelay)
		if err != nil {
			return err
		}
		broker = m
		defer func() { m.Kill() }() // the process of the last restart
		brokerURL, brokerWhat = "tcp://"+m.addr, fmt.Sprintf("started here: %s, set_tcp_nodelay %v", bin, f.nodelay)
	}
	// The vehicle's side (raw publisher, uploader) reaches the broker at
	// edgeURL; the cloud's side (subscriber, ingester) at brokerURL.
	edgeURL, linkWhat := brokerURL, "loopback"
	if f.uplinkMbps > 0 {
		host := strings.TrimPrefix(brokerURL, "tcp://")
		if host == brokerURL {
			return fmt.Errorf("--uplink needs a tcp:// broker, not %s", brokerURL)
		}
		ul, err := startUplink(host, f.uplinkMbps, f.uplinkRTT)
		if err != nil {
			return err
		}
		defer ul.close()
		edgeURL, linkWhat = ul.url(), fmt.Sprintf("emulated uplink %g Mbit/s, RTT %v", f.uplinkMbps, f.uplinkRTT)
	}
	runID := randomID()

	fmt.Fprintf(stdout, "suite sync: backlog of %d inference summaries (%d bytes) per round, %d rounds; broker %s (%s); vehicle link: %s\n",
		f.records, summaryBytes, f.rounds, brokerURL, brokerWhat, linkWhat)
	fmt.Fprintf(stdout, "settings: %s; baseline window %d QoS 1 publishes; live records %g/s on %s\n",
		uploaderSettings(f), rawWindow, f.liveRate, f.liveStream)

	var rawRates, packRates, upRates, ratios, packRatios []float64
	var live, liveCloud []time.Duration
	liveMissed := 0
	var tot roundTotals
	for round := 1; round <= f.rounds; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := filepath.Join(root, fmt.Sprintf("round-%d", round))
		vehicle := fmt.Sprintf("bench-%s-%d", runID, round)
		store, targets, err := fillStore(ctx, filepath.Join(dir, "store"), f.records)
		if err != nil {
			return fmt.Errorf("round %d: fill the store: %w", round, err)
		}
		res, err := func() (roundResult, error) {
			defer store.Close(context.Background())
			var res roundResult
			packer := batch.Packer{Vehicle: vehicle, Store: store.StoreID(), Boot: store.Boot(), Compression: batch.Flate, MaxPayload: f.maxPayload}
			if f.uncompressed {
				packer.Compression = batch.None
			}
			topic := fmt.Sprintf("vigil-bench/%s/raw/%d", runID, round)
			var batches [][]byte
			var err error
			res.rawPack, batches, err = rawRound(ctx, edgeURL, brokerURL, topic, runID, packingSource(store, packer), rawWindow, f.timeout)
			if err != nil {
				return res, fmt.Errorf("raw baseline with packing: %w", err)
			}
			res.batches = len(batches)
			for _, b := range batches {
				res.bytes += len(b)
			}
			res.raw, _, err = rawRound(ctx, edgeURL, brokerURL, topic, runID, sliceSource(batches), rawWindow, f.timeout)
			if err != nil {
				return res, fmt.Errorf("raw baseline: %w", err)
			}
			if err := uploaderRound(ctx, f, edgeURL, brokerURL, runID, vehicle, dir, store, targets, &res); err != nil {
				return res, fmt.Errorf("uploader: %w", err)
			}
			return res, nil
		}()
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		n := float64(res.backlog(targets))
		raw, rawPack, up := n/res.raw.Seconds(), n/res.rawPack.Seconds(), n/res.drain.Seconds()
		rawRates, packRates, upRates = append(rawRates, raw), append(packRates, rawPack), append(upRates, up)
		ratios, packRatios = append(ratios, up/raw), append(packRatios, up/rawPack)
		live = append(live, res.live...)
		liveCloud, liveMissed = append(liveCloud, res.liveCloud...), liveMissed+res.liveCloudMissed
		tot.add(res)
		fmt.Fprintf(stdout, "round %d: %d records in %d batches, %.2f MB; raw publish %v %.0f records/s; raw read+pack+publish %v %.0f records/s; uploader %v %.0f records/s; ratio %.3f (%.3f vs read+pack+publish); live to cursor p50 %.1f ms p99 %.1f ms, to ingester ack p99 %.1f ms (%d records); max in flight %d batches, budget up to %.0f KiB (lowest ack round trip %.1f ms, delivery %.2f MB/s)\n",
			round, res.backlog(targets), res.batches, float64(res.bytes)/1e6,
			res.raw.Round(time.Millisecond), raw, res.rawPack.Round(time.Millisecond), rawPack, res.drain.Round(time.Millisecond), up,
			up/raw, up/rawPack, millis(percentile(res.live, 0.5)), millis(percentile(res.live, 0.99)), millis(percentile(res.liveCloud, 0.99)), len(res.live), res.maxInFlight,
			float64(res.maxBudget)/1024, millis(res.minAckRTT), res.deliveryRate/1e6)
		fmt.Fprintf(stdout, "round %d link: batches %d sent, %d resent, %d acked, %d rejected; ingester stored %d, duplicates %d, failed %d; sink holds %d records, each once\n",
			round, res.sent, res.resent, res.acked, res.rejected, res.stored, res.duplicates, res.failed, res.sinkRecords)
	}
	p50, p99 := percentile(live, 0.5), percentile(live, 0.99)
	if liveMissed > 0 {
		// A live record whose ack never showed would flatter the p99.
		return fmt.Errorf("%d live records were never seen acknowledged by the ingester", liveMissed)
	}
	fmt.Fprintf(stdout, "totals: batches %d (%.2f MB packed) of backlog, %d sent by the uploader (backlog and live), resends %d, duplicates %d, rejected %d; live records %d\n",
		tot.batches, float64(tot.bytes)/1e6, tot.sent, tot.resent, tot.duplicates, tot.rejected, len(live))
	fmt.Fprintf(stdout, "medians: raw publish %.0f records/s, raw read+pack+publish %.0f records/s, uploader %.0f records/s; ratio %.3f (%.3f vs read+pack+publish)\n",
		median(rawRates), median(packRates), median(upRates), median(ratios), median(packRatios))
	fmt.Fprintf(stdout, "live records during the drain, from append until the outbox cursor covers them: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		millis(p50), millis(p99), millis(percentile(live, 1)))
	fmt.Fprintf(stdout, "live records during the drain, from append until the ingester's ack covers them: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d with no ack seen)\n",
		millis(percentile(liveCloud, 0.5)), millis(percentile(liveCloud, 0.99)), millis(percentile(liveCloud, 1)), liveMissed)
	restart := ""
	if f.restarts > 0 && broker == nil {
		fmt.Fprintf(stdout, "broker restarts: skipped, since the broker was given (--broker): the scenario kills the broker\n")
	} else if f.restarts > 0 {
		toLive, err := runRestarts(ctx, f, broker, edgeURL, brokerURL, runID, root, stdout)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "broker restarts (%d, down %v each): from the broker's return to the first live record stored in the cloud: p50 %.0f ms, max %.0f ms\n",
			len(toLive), f.restartOutage, millis(percentile(toLive, 0.5)), millis(percentile(toLive, 1)))
		restart = fmt.Sprintf(" restart_to_live_ms=%.0f", millis(percentile(toLive, 0.5)))
	}
	rtt := f.uplinkRTT
	if f.uplinkMbps == 0 {
		rtt = 0
	}
	fmt.Fprintf(stdout, "RESULT suite=sync records=%d drain_records_per_s=%.0f ratio_vs_raw=%.3f live_p99_ms_during_drain=%.1f%s uplink_mbps=%g uplink_rtt_ms=%.0f\n",
		f.records, median(upRates), median(ratios), millis(percentile(liveCloud, 0.99)), restart, f.uplinkMbps, millis(rtt))
	return nil
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// uploaderSettings describes the edge.Config the bench sets, and says
// which fields differ from the uploader's defaults.
func uploaderSettings(f syncFlags) string {
	var parts []string
	if f.window == 0 {
		parts = append(parts, "window default")
	} else {
		parts = append(parts, fmt.Sprintf("window %d (not the default)", f.window))
	}
	if f.liveWindow != 0 {
		parts = append(parts, fmt.Sprintf("live window %d (not the default)", f.liveWindow))
	}
	if f.maxPayload == 0 {
		parts = append(parts, "max payload default (128 KiB)")
	} else {
		parts = append(parts, fmt.Sprintf("max payload %d B (not the default)", f.maxPayload))
	}
	if f.uncompressed {
		parts = append(parts, "uncompressed (not the default)")
	} else {
		parts = append(parts, "flate (default)")
	}
	return "uploader " + strings.Join(parts, ", ") + ", every other edge.Config field default"
}

func randomID() string {
	var b [4]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// summary fills b (summaryBytes long) with the request summary the daemon
// would write for frame seq: the layout of agent/telemetry.go, with
// latencies drawn from a hash of seq so that a record's payload follows
// from its sequence number alone (the sink check relies on it).
func summary(b []byte, seq uint64) {
	h := seq*0x9e3779b97f4a7c15 + 0x51
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	b[0], b[1], b[2], b[3] = 1, 1, 0, 0 // version, ok, no reason, primary
	if h%50 == 0 {
		b[1], b[2], b[3] = 2, 1, 255 // an occasional NO_RESULT
	}
	binary.LittleEndian.PutUint64(b[4:], seq)
	binary.LittleEndian.PutUint64(b[12:], 3)
	lat := uint32(4000 + h>>40%4000)
	binary.LittleEndian.PutUint32(b[20:], lat+150)
	for i := range 3 {
		o := 24 + 9*i
		if i == 2 {
			clear(b[o : o+9]) // the degraded model did not run
			continue
		}
		b[o] = 1
		binary.LittleEndian.PutUint32(b[o+1:], uint32(20*i))
		binary.LittleEndian.PutUint32(b[o+5:], lat-uint32(h>>(8*i)%500))
	}
}

// fillStore opens a store in dir with the default configuration and
// appends n summaries to the inference stream, keeping at most half the
// queue in flight so none is dropped (the store is offline: nothing
// drains it). It waits until every record of every stream is durable and
// returns the last seq of each stream with records: the backlog the
// drain must clear.
func fillStore(ctx context.Context, dir string, n int) (*storage.Store, map[string]uint64, error) {
	cfg := storage.DefaultConfig()
	cfg.Dir = dir
	s, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*storage.Store, map[string]uint64, error) {
		s.Close(context.Background())
		return nil, nil, err
	}
	st := s.Stream(storage.StreamInference)
	window := uint64(cfg.QueueRecords / 2)
	var p [summaryBytes]byte
	for range n {
		for st.Assigned()-st.Durable() >= window {
			ch := s.DurableChanged()
			if st.Assigned()-st.Durable() < window {
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return fail(ctx.Err())
			}
		}
		want := st.Assigned() + 1
		summary(p[:], want)
		seq, ok := st.Append(p[:])
		if !ok {
			return fail(fmt.Errorf("record dropped: %+v", s.Stats().Streams))
		}
		if seq != want {
			return fail(fmt.Errorf("append gave seq %d, want %d", seq, want))
		}
	}
	targets := map[string]uint64{}
	for _, name := range s.Streams() {
		stream := s.Stream(name)
		last := stream.Assigned()
		if last == 0 {
			continue
		}
		if err := stream.WaitDurable(ctx, last); err != nil {
			return fail(err)
		}
		targets[name] = last
	}
	return s, targets, nil
}

// batchSource yields the batches a baseline publishes, then nil.
type batchSource func() ([]byte, error)

// packingSource packs the store's durable records, stream by stream in
// priority order as the uploader drains them, one batch per call.
func packingSource(s *storage.Store, p batch.Packer) batchSource {
	names := s.Streams()
	var after uint64
	return func() ([]byte, error) {
		for len(names) > 0 {
			b, h, _, err := p.Next(s, names[0], after)
			if err != nil {
				return nil, err
			}
			if b != nil {
				after = h.LastSeq
				return b, nil
			}
			names, after = names[1:], 0
		}
		return nil, nil
	}
}

// sliceSource yields batches packed earlier.
func sliceSource(batches [][]byte) batchSource {
	return func() ([]byte, error) {
		if len(batches) == 0 {
			return nil, nil
		}
		b := batches[0]
		batches = batches[1:]
		return b, nil
	}
}

// rawRound is a baseline: a bare paho client publishes the batches next
// yields at QoS 1 on topic, keeping at most window publishes awaiting
// their PUBACK, and a bare subscriber (QoS 1, its own connection)
// receives them. It returns the time from the publisher's connection
// attempt until every PUBACK has come back and the subscriber has every
// batch, and the batches published.
func rawRound(ctx context.Context, edgeURL, brokerURL, topic, runID string, next batchSource, window int, timeout time.Duration) (time.Duration, [][]byte, error) {
	var got, gotBytes atomic.Int64
	arrived := make(chan struct{}, 1)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).
		SetClientID("vigil-bench-rawsub-" + runID).SetCleanSession(true).SetAutoReconnect(false))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return 0, nil, fmt.Errorf("subscriber connect: %v", tokenErr(t))
	}
	defer sub.Disconnect(100)
	st := sub.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		gotBytes.Add(int64(len(m.Payload())))
		got.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		return 0, nil, fmt.Errorf("subscribe: %v", tokenErr(st))
	}

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(edgeURL).
		SetClientID("vigil-bench-rawpub-" + runID).SetCleanSession(true).SetAutoReconnect(false).
		SetWriteTimeout(10 * time.Second))
	deadline := time.Now().Add(timeout)
	t0 := time.Now()
	if t := pub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return 0, nil, fmt.Errorf("publisher connect: %v", tokenErr(t))
	}
	defer pub.Disconnect(100)
	wait := func(t mqtt.Token) error {
		if !t.WaitTimeout(time.Until(deadline)) {
			return fmt.Errorf("no PUBACK within %v", timeout)
		}
		return t.Error()
	}
	var sent [][]byte
	var sentBytes int64
	var inflight []mqtt.Token
	for {
		b, err := next()
		if err != nil {
			return 0, nil, err
		}
		if b == nil {
			break
		}
		if len(inflight) == window {
			if err := wait(inflight[0]); err != nil {
				return 0, nil, err
			}
			inflight = inflight[1:]
		}
		inflight = append(inflight, pub.Publish(topic, 1, false, b))
		sent = append(sent, b)
		sentBytes += int64(len(b))
	}
	for _, t := range inflight {
		if err := wait(t); err != nil {
			return 0, nil, err
		}
	}
	for got.Load() < int64(len(sent)) {
		select {
		case <-arrived:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(time.Until(deadline)):
			return 0, nil, fmt.Errorf("subscriber got %d of %d batches within %v", got.Load(), len(sent), timeout)
		}
	}
	elapsed := time.Since(t0)
	if got.Load() != int64(len(sent)) || gotBytes.Load() != sentBytes {
		return 0, nil, fmt.Errorf("subscriber got %d batches of %d bytes, %d of %d bytes were published", got.Load(), gotBytes.Load(), len(sent), sentBytes)
	}
	return elapsed, sent, nil
}

func tokenErr(t mqtt.Token) error {
	if err := t.Error(); err != nil {
		return err
	}
	return errors.New("timed out")
}

// roundResult is one round's figures.
type roundResult struct {
	batches, bytes  int
	raw, rawPack    time.Duration // the baselines: publish only, and read+pack+publish
	drain           time.Duration
	live            []time.Duration // append to the outbox cursor covering it
	liveCloud       []time.Duration // append to the ingester's ack covering it
	liveCloudMissed int
	maxInFlight     int
	maxBudget       int           // the uploader's largest in-flight budget, bytes
	minAckRTT       time.Duration // and what it was sized from, at the end
	deliveryRate    float64

	sent, resent, acked, rejected uint64 // the uploader's
	stored, duplicates, failed    uint64 // the ingester's
	sinkRecords                   uint64
}

// backlog is the records the drain had to clear.
func (r roundResult) backlog(targets map[string]uint64) uint64 {
	var n uint64
	for _, t := range targets {
		n += t
	}
	return n
}

type roundTotals struct {
	batches, bytes                     int
	sent, resent, duplicates, rejected uint64
}

func (t *roundTotals) add(r roundResult) {
	t.batches += r.batches
	t.bytes += r.bytes
	t.sent += r.sent
	t.resent += r.resent
	t.duplicates += r.duplicates
	t.rejected += r.rejected
}

// liveProducer appends a record to a stream at a steady rate and times
// each from its append until the stream's cursor covers it.
type liveProducer struct {
	st   *storage.Stream
	mu   sync.Mutex
	sent []liveRecord // appended, not acknowledged yet
	all  []liveRecord
	lat  []time.Duration
	// payloads of the live records by seq, for the sink check.
	payloads map[uint64][]byte
	last     uint64
	stop     chan struct{}
	done     chan struct{}
	err      error
}

type liveRecord struct {
	seq uint64
	at  time.Time
}

func startLive(st *storage.Stream, rate float64) *liveProducer {
	lp := &liveProducer{st: st, payloads: map[uint64][]byte{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lp.done)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for {
			select {
			case <-lp.stop:
				return
			case <-tick.C:
			}
			p := make([]byte, summaryBytes)
			summary(p, st.Assigned()+1)
			at := time.Now()
			seq, ok := st.Append(p)
			lp.mu.Lock()
			if !ok {
				lp.err = fmt.Errorf("live record to %s dropped", st.Name())
				lp.mu.Unlock()
				return
			}
			lp.sent = append(lp.sent, liveRecord{seq, at})
			lp.all = append(lp.all, liveRecord{seq, at})
			lp.payloads[seq] = p
			lp.last = seq
			lp.mu.Unlock()
		}
	}()
	return lp
}

// halt stops appending and waits for the goroutine.
func (lp *liveProducer) halt() {
	select {
	case <-lp.stop:
	default:
		close(lp.stop)
	}
	<-lp.done
}

// acked notes that the records through cursor are acknowledged at now,
// and reports how many are still waiting and the producer's error.
func (lp *liveProducer) acked(cursor uint64, now time.Time) (int, error) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	n := 0
	for n < len(lp.sent) && lp.sent[n].seq <= cursor {
		lp.lat = append(lp.lat, now.Sub(lp.sent[n].at))
		n++
	}
	lp.sent = lp.sent[n:]
	return len(lp.sent), lp.err
}

// ackWatcher subscribes to a vehicle's ack topic, as the uploader does,
// and notes when the ingester acknowledged each range of one stream:
// live records are timed to it as well as to the outbox cursor, since an
// uploader that sends live records ahead of the backlog gets them stored
// in the cloud long before the cursor, which moves through the backlog
// in order, covers them.
type ackWatcher struct {
	client mqtt.Client
	mu     sync.Mutex
	acks   []ackAt
}

type ackAt struct {
	first, last uint64
	at          time.Time
}

func watchAcks(brokerURL, vehicle, stream string, storeID uint64) (*ackWatcher, error) {
	w := &ackWatcher{}
	w.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).
		SetClientID("vigil-bench-acks-" + vehicle).SetCleanSession(true).SetAutoReconnect(false))
	if t := w.client.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("ack watcher connect: %v", tokenErr(t))
	}
	t := w.client.Subscribe(edge.AckTopic(vehicle), 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		a, err := batch.DecodeAck(m.Payload())
		if err != nil || a.Stream != stream || a.Store != storeID || a.Status == batch.StatusRejected {
			return
		}
		w.mu.Lock()
		w.acks = append(w.acks, ackAt{a.FirstSeq, a.LastSeq, at})
		w.mu.Unlock()
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		w.client.Disconnect(0)
		return nil, fmt.Errorf("ack watcher subscribe: %v", tokenErr(t))
	}
	return w, nil
}

func (w *ackWatcher) close() { w.client.Disconnect(100) }

// latencies times each record from its append to the first ack covering
// it; records no ack covered are left out and counted.
func (w *ackWatcher) latencies(recs []liveRecord) ([]time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	missed := 0
	for _, r := range recs {
		var first time.Time
		for _, a := range w.acks {
			if a.first <= r.seq && r.seq <= a.last && (first.IsZero() || a.at.Before(first)) {
				first = a.at
			}
		}
		if first.IsZero() {
			missed++
			continue
		}
		out = append(out, first.Sub(r.at))
	}
	return out, missed
}

// uploaderRound drains store through an edge.Uploader into an ingester
// and a sink of its own, appending live records meanwhile, checks the
// sink, and fills in res.
func uploaderRound(ctx context.Context, f syncFlags, edgeURL, brokerURL, runID, vehicle, dir string, store *storage.Store, targets map[string]uint64, res *roundResult) error {
	sinkDir := filepath.Join(dir, "sink")
	sk, err := sink.Open(sinkDir, sink.Options{})
	if err != nil {
		return err
	}
	in, err := ingest.New(ingest.Config{Broker: brokerURL, ClientID: "vigil-bench-ingest-" + vehicle, Group: "vigil-bench-" + runID}, sk, nil)
	if err != nil {
		return err
	}
	in.Start()
	defer closeQuietly(in.Close)
	for deadline := time.Now().Add(10 * time.Second); !in.Stats().Subscribed; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("the ingester did not subscribe within 10 s")
		}
	}

	cfg := edge.Config{Broker: edgeURL, Vehicle: vehicle, Boot: store.Boot(), Window: f.window, LiveWindow: f.liveWindow, MaxPayload: f.maxPayload, UseNone: f.uncompressed}
	up, err := edge.New(cfg, store, nil)
	if err != nil {
		return err
	}
	defer closeQuietly(up.Close)

	acks, err := watchAcks(brokerURL, vehicle, f.liveStream, store.StoreID())
	if err != nil {
		return err
	}
	defer acks.close()

	liveStream := store.Stream(f.liveStream)
	deadline := time.Now().Add(f.timeout)
	t0 := time.Now()
	up.Start()
	// Live records are those made while the link is up: what the vehicle
	// recorded before it connected is backlog, by definition.
	for up.State() == edge.Offline || up.State() == edge.Connecting {
		if time.Now().After(deadline) {
			return fmt.Errorf("the uploader did not connect within %v", f.timeout)
		}
		time.Sleep(time.Millisecond)
	}
	lp := startLive(liveStream, f.liveRate)
	defer lp.halt()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	drained := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		if now.After(deadline) {
			return fmt.Errorf("not drained within %v: uploader %+v, ingester %+v", f.timeout, up.Stats(), in.Stats())
		}
		us := up.Stats()
		for _, s := range us.Streams {
			res.maxInFlight = max(res.maxInFlight, s.InFlight)
		}
		res.maxBudget = max(res.maxBudget, us.InFlightBudget)
		c, err := store.Cursor(f.liveStream)
		if err != nil {
			return err
		}
		waiting, err := lp.acked(c, now)
		if err != nil {
			return err
		}
		if !drained {
			drained = true
			for name, t := range targets {
				if c, err := store.Cursor(name); err != nil || c < t {
					drained = false
					break
				}
			}
			if drained {
				res.drain = now.Sub(t0)
				lp.halt() // the live records still waiting are timed to their ack
				continue
			}
		}
		if drained && waiting == 0 {
			break
		}
	}
	for up.State() != edge.Live {
		if time.Now().After(deadline) {
			return fmt.Errorf("uploader %v, not live, after the drain: %+v", up.State(), up.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	res.live = lp.lat
	// The watcher's copy of the last acks may arrive a little after the
	// uploader's.
	for wait := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		res.liveCloud, res.liveCloudMissed = acks.latencies(lp.all)
		if res.liveCloudMissed == 0 || time.Now().After(wait) {
			break
		}
	}
	us := up.Stats()
	res.minAckRTT, res.deliveryRate = us.MinAckRTT, us.DeliveryRate
	for _, s := range us.Streams {
		res.sent += s.Sent
		res.resent += s.Resent
		res.acked += s.Acked
		res.rejected += s.Rejected
	}
	closeQuietly(up.Close)
	closeQuietly(in.Close)
	is := in.Stats()
	res.stored, res.duplicates, res.failed = is.Stored, is.Duplicate, is.Failed
	n, err := checkSink(sk, sinkDir, vehicle, store, f.liveStream, lp.payloads)
	res.sinkRecords = n
	return err
}

func closeQuietly(close func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	close(ctx) //nolint:errcheck // closing twice or late is harmless here
}

// checkSink verifies that the sink holds every durable record of every
// stream of the store exactly once, under the store's incarnation id
// (<root>/<vehicle>/<store id in hex>/<stream>/): it reads every record
// as stored (sink.Scan: the sink's own reads de-duplicate, which would
// hide a record stored twice), counts each seq, and compares the data
// records with what was appended. It returns the records checked.
func checkSink(sk *sink.Sink, sinkDir, vehicle string, store *storage.Store, liveStream string, live map[uint64][]byte) (uint64, error) {
	var total uint64
	reports := map[string]sink.StreamReport{}
	for _, v := range sk.Report().Vehicles {
		if v.Vehicle != vehicle {
			continue
		}
		for _, s := range v.Streams {
			if s.Store != store.StoreID() {
				return total, fmt.Errorf("the sink holds %s's stream %s of store %016x; the vehicle's store is %016x", vehicle, s.Stream, s.Store, store.StoreID())
			}
			reports[s.Stream] = s
		}
	}
	want := make([]byte, summaryBytes)
	for _, ss := range store.Stats().Streams {
		if ss.Durable == 0 {
			continue
		}
		if ss.Cursor != ss.Durable {
			return total, fmt.Errorf("%s: cursor %d, durable %d", ss.Name, ss.Cursor, ss.Durable)
		}
		rep := reports[ss.Name]
		if rep.Records != ss.Durable || rep.HighWater != ss.Durable || len(rep.Missing) > 0 {
			return total, fmt.Errorf("%s: sink reports %d records through %d, missing %v; %d durable", ss.Name, rep.Records, rep.HighWater, rep.Missing, ss.Durable)
		}
		seen := make([]uint8, ss.Durable+1)
		err := sk.Scan(vehicle, store.StoreID(), ss.Name, func(r batch.Record) error {
			if r.Seq == 0 || r.Seq > ss.Durable {
				return fmt.Errorf("%s: seq %d stored, only %d durable", ss.Name, r.Seq, ss.Durable)
			}
			if seen[r.Seq]++; seen[r.Seq] > 1 {
				return fmt.Errorf("%s/%d stored more than once", ss.Name, r.Seq)
			}
			if r.Kind != storage.KindData {
				return nil
			}
			exp, ok := []byte(nil), false
			if ss.Name == liveStream {
				exp, ok = live[r.Seq]
			}
			if !ok {
				summary(want, r.Seq)
				exp = want
			}
			if !bytes.Equal(r.Payload, exp) {
				return fmt.Errorf("%s/%d: payload %x, appended %x", ss.Name, r.Seq, r.Payload, exp)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if i := slices.Index(seen[1:], 0); i >= 0 {
			return total, fmt.Errorf("%s/%d missing from the sink", ss.Name, i+1)
		}
		total += ss.Durable
	}
	return total, nil
}

// findMosquitto locates the broker as sync/mqtttest does: the given
// path, else mosquitto on PATH, else the Debian package's locations.
func findMosquitto(bin string) (string, error) {
	p, err := mosquitto.Find(bin)
	switch {
	case err == nil:
		return p, nil
	case bin != "":
		return "", fmt.Errorf("--mosquitto %s: %w", bin, err)
	default:
		return "", fmt.Errorf("sync: %w, or give a broker with --broker URL", err)
	}
}

// mosquittoProc is a broker this process started.
type mosquittoProc struct {
	*mosquitto.Proc
	addr, bin, conf string
}

// restart starts the broker again (after Kill) on its port, with its
// configuration.
func (m *mosquittoProc) restart(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := mosquitto.Start(m.bin, m.conf, m.addr, deadline)
		if err == nil {
			m.Proc = p
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto did not start again on %s: %w", m.addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the port may still be held
	}
}

// startMosquitto starts bin on a free loopback port with a configuration
// written in dir: the one sync/mqtttest uses (anonymous, no persistence,
// queues and in-flight windows that never throttle a benchmark), with
// set_tcp_nodelay when nodelay is set.
func startMosquitto(ctx context.Context, bin, dir string, nodelay bool) (*mosquittoProc, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "mosquitto.log")
	conf := filepath.Join(dir, "mosquitto.conf")
	deadline := time.Now().Add(10 * time.Second)
	for {
		port, err := mosquitto.FreePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		lines := []string{
			fmt.Sprintf("listener %d 127.0.0.1", port),
			"allow_anonymous true",
			"persistence false",
			"max_queued_messages 100000",
			"max_queued_bytes 0",
			"max_inflight_messages 0",
			"log_dest file " + logFile,
			"log_type error",
			"log_type warning",
			"log_type notice",
		}
		if nodelay {
			lines = append(lines, "set_tcp_nodelay true")
		}
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return nil, err
		}
		p, err := mosquitto.Start(bin, conf, addr, deadline)
		if err == nil {
			return &mosquittoProc{Proc: p, addr: addr, bin: bin, conf: conf}, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			raw, _ := os.ReadFile(logFile)
			return nil, fmt.Errorf("mosquitto did not start on %s: %v; log:\n%s", addr, err, raw)
		}
		// It exited: the port may have been taken meanwhile.
	}
}
