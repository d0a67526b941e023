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
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/edge"
)

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

func randomID() string {
	var b [4]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
