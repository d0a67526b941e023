package main

// The sync suite: the edge uploader's drain of an offline backlog, with
// the cloud side (ingester and sink) and a Mosquitto on this machine.
// The cloud side runs in a process of its own (synccloud.go), with the
// baselines' subscriber, the ack watcher and the emulated uplink's
// proxy, so that this
// process is the vehicle's side and its CPU time per drained record
// (cpuSpan, synccpu.go) can be set against the raw publisher's.
//
// Records: the backlog is the daemon's 51-byte inference summaries only
// (agent/telemetry.go's layout, values drawn from the seq), the stream
// that holds one record per frame and so nearly all of a backlog; the
// store adds its own "storage.opened" notice in the events stream,
// which the drain clears too and the rates count. Live records are
// summaries as well, on --live-stream (inference by default, as the
// daemon's are). Each is timed to the ingester's ack covering it, seen by
// a subscriber of the vehicle's ack topic in the cloud side's process
// (wall-clock times, on the same machine): when the record is stored in
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
	"fmt"
	"io"
	"os"
	"time"
)

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseSyncFlags(args, stderr)
	if err != nil {
		return err
	}
	rawWindow := f.baselineWindow()

	root, err := os.MkdirTemp(f.dir, "vigil-bench-sync-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	link, err := startSyncLink(ctx, f, root, stderr)
	if err != nil {
		return err
	}
	defer link.close() //nolint:errcheck // an error here is returned below, on the path without one of its own
	runID := randomID()

	fmt.Fprintf(stdout, "suite sync: backlog of %d inference summaries (%d bytes) per round, %d rounds; broker %s (%s); vehicle link: %s\n",
		f.records, summaryBytes, f.rounds, link.brokerURL, link.brokerWhat, link.linkWhat)
	fmt.Fprintf(stdout, "settings: %s; baseline window %d QoS 1 publishes; live records %g/s on %s\n",
		uploaderSettings(f), rawWindow, f.liveRate, f.liveStream)
	proxy := ""
	if f.uplinkMbps > 0 {
		proxy = ", the uplink's proxy"
	}
	fmt.Fprintf(stdout, "cloud side: pid %d (ingesters, sinks, the baselines' subscriber%s); CPU times are this process's (pid %d)\n",
		link.cloud.pid(), proxy, os.Getpid())

	var t syncTally
	for round := 1; round <= f.rounds; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, targets, err := runRound(ctx, f, link, runID, root, round, rawWindow)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		t.add(stdout, round, res, targets)
	}
	if t.liveMissed > 0 {
		// A live record whose ack never showed would flatter the p99.
		return fmt.Errorf("%d live records were never seen acknowledged by the ingester", t.liveMissed)
	}
	t.summarize(stdout)
	restart := ""
	if f.restarts > 0 && link.broker == nil {
		fmt.Fprintf(stdout, "broker restarts: skipped, since the broker was given (--broker): the scenario kills the broker\n")
	} else if f.restarts > 0 {
		toLive, err := runRestarts(ctx, f, link.broker, link.edgeURL, link.brokerURL, runID, root, stdout)
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
	if err := link.close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "RESULT suite=sync records=%d drain_records_per_s=%.0f ratio_vs_raw=%.3f live_p99_ms_during_drain=%.1f%s uplink_mbps=%g uplink_rtt_ms=%.0f cpu_us_per_record=%.3f raw_cpu_us_per_record=%.3f cpu_ratio_vs_raw=%.2f\n",
		f.records, median(t.upRates), median(t.ratios), millis(percentile(t.liveCloud, 0.99)), restart, f.uplinkMbps, millis(rtt),
		median(t.upCPU), median(t.rawCPU), median(t.cpuRatios))
	return nil
}

// syncTally gathers the rounds' figures for the suite's closing lines.
type syncTally struct {
	rawRates, packRates, upRates, ratios, packRatios []float64
	// CPU time per drained record in µs, and the uploader's over the
	// raw publisher's.
	rawCPU, packCPU, upCPU, cpuRatios []float64
	live, liveCloud                   []time.Duration
	liveMissed                        int
	tot                               roundTotals
}

// add takes in one round's figures and prints the round's two lines.
func (t *syncTally) add(stdout io.Writer, round int, res roundResult, targets map[string]uint64) {
	n := float64(res.backlog(targets))
	raw, rawPack, up := n/res.raw.Seconds(), n/res.rawPack.Seconds(), n/res.drain.Seconds()
	t.rawRates, t.packRates, t.upRates = append(t.rawRates, raw), append(t.packRates, rawPack), append(t.upRates, up)
	t.ratios, t.packRatios = append(t.ratios, up/raw), append(t.packRatios, up/rawPack)
	t.live = append(t.live, res.live...)
	t.liveCloud, t.liveMissed = append(t.liveCloud, res.liveCloud...), t.liveMissed+res.liveCloudMissed
	t.tot.add(res)
	rawCPU, packCPU, upCPU := perRecordMicros(res.rawCPU, n), perRecordMicros(res.rawPackCPU, n), perRecordMicros(res.drainCPU, n)
	t.rawCPU, t.packCPU, t.upCPU = append(t.rawCPU, rawCPU), append(t.packCPU, packCPU), append(t.upCPU, upCPU)
	t.cpuRatios = append(t.cpuRatios, upCPU/rawCPU)
	fmt.Fprintf(stdout, "round %d: %d records in %d batches, %.2f MB; raw publish %v %.0f records/s; raw read+pack+publish %v %.0f records/s; uploader %v %.0f records/s; ratio %.3f (%.3f vs read+pack+publish); live to cursor p50 %.1f ms p99 %.1f ms, to ingester ack p99 %.1f ms (%d records); max in flight %d batches, budget up to %.0f KiB (lowest ack round trip %.1f ms, delivery %.2f MB/s)\n",
		round, res.backlog(targets), res.batches, float64(res.bytes)/1e6,
		res.raw.Round(time.Millisecond), raw, res.rawPack.Round(time.Millisecond), rawPack, res.drain.Round(time.Millisecond), up,
		up/raw, up/rawPack, millis(percentile(res.live, 0.5)), millis(percentile(res.live, 0.99)), millis(percentile(res.liveCloud, 0.99)), len(res.live), res.maxInFlight,
		float64(res.maxBudget)/1024, millis(res.minAckRTT), res.deliveryRate/1e6)
	fmt.Fprintf(stdout, "round %d link: batches %d sent, %d resent, %d acked, %d rejected; ingester stored %d, duplicates %d, failed %d; sink holds %d records, each once\n",
		round, res.sent, res.resent, res.acked, res.rejected, res.stored, res.duplicates, res.failed, res.sinkRecords)
	fmt.Fprintf(stdout, "round %d cpu: raw publish %v, %.3f µs/record; raw read+pack+publish %v, %.3f µs/record; uploader %v, %.3f µs/record; ratio %.2f (%.2f vs read+pack+publish)\n",
		round, res.rawCPU.Round(time.Millisecond), rawCPU, res.rawPackCPU.Round(time.Millisecond), packCPU, res.drainCPU.Round(time.Millisecond), upCPU,
		upCPU/rawCPU, upCPU/packCPU)
}

// perRecordMicros is cpu spread over n records, in µs.
func perRecordMicros(cpu time.Duration, n float64) float64 {
	return float64(cpu) / float64(time.Microsecond) / n
}

// summarize prints the totals, the medians and the live records' latencies
// over all rounds.
func (t *syncTally) summarize(stdout io.Writer) {
	tot := t.tot
	fmt.Fprintf(stdout, "totals: batches %d (%.2f MB packed) of backlog, %d sent by the uploader (backlog and live), resends %d, duplicates %d, rejected %d; live records %d\n",
		tot.batches, float64(tot.bytes)/1e6, tot.sent, tot.resent, tot.duplicates, tot.rejected, len(t.live))
	fmt.Fprintf(stdout, "medians: raw publish %.0f records/s, raw read+pack+publish %.0f records/s, uploader %.0f records/s; ratio %.3f (%.3f vs read+pack+publish)\n",
		median(t.rawRates), median(t.packRates), median(t.upRates), median(t.ratios), median(t.packRatios))
	fmt.Fprintf(stdout, "medians, this process's CPU per drained record: raw publish %.3f µs, raw read+pack+publish %.3f µs, uploader %.3f µs; ratio %.2f\n",
		median(t.rawCPU), median(t.packCPU), median(t.upCPU), median(t.cpuRatios))
	fmt.Fprintf(stdout, "live records during the drain, from append until the outbox cursor covers them: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		millis(percentile(t.live, 0.5)), millis(percentile(t.live, 0.99)), millis(percentile(t.live, 1)))
	fmt.Fprintf(stdout, "live records during the drain, from append until the ingester's ack covers them: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d with no ack seen)\n",
		millis(percentile(t.liveCloud, 0.5)), millis(percentile(t.liveCloud, 0.99)), millis(percentile(t.liveCloud, 1)), t.liveMissed)
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func randomID() string {
	var b [4]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
