package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/edge"
)

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
	cpuProfile    string
}

// syncAbout is the suite's description in its --help.
const syncAbout = `Each round fills a fresh storage.Store (default configuration) with an offline
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
The sink must hold every record exactly once, or the suite fails: it is
read back from its directory once the ingester is closed.

The cloud's side of the rounds (the ingesters, the sinks, the baselines'
subscriber, the watcher of the ack topic that times the live records) and
the emulated uplink's proxy run in a process of their own, this executable
started again, so that the bench process is the vehicle's side. Its CPU time (getrusage: user and system, all threads) is taken over
the raw publish (connection to the last batch received; the batches packed
before) and over the uploader's drain (Start until the cursors reach the
backlog's end) and divided by the records drained: cpu_us_per_record and
raw_cpu_us_per_record are the medians of the rounds' figures,
cpu_ratio_vs_raw the median of their ratios. Both include what the bench
process's other goroutines do meanwhile (Badger's background work among
them); the uploader's also includes the store's work for the drain
(reading segments, writing cursors), the live records' appends and the
suite's polling of cursors and stats every millisecond. --cpuprofile writes profiles of these spans and of the raw
read+pack+publish.

Then --restarts times, on a fresh store streaming live records at --live-rate
(no backlog) through the same uplink, the broker is killed (SIGKILL) and
started again on its port after --restart-outage; restart_to_live_ms is the
median time from its return (listening again) to the first live record the
ingester stores (a new one, not a duplicate of one stored before the kill);
this ingester runs in the bench process, which times its reconnection.
Vehicle and ingester reconnect with their default backoffs (the vehicle's
jittered, from 500 ms doubling; the ingester's every second), so either may be
back first; each restart's line says which, and when every record appended
before the return was acknowledged.

The vehicle's side reaches the broker over an emulated uplink, 20 Mbit/s
with 40 ms of round trip by default (an LTE-class vehicle link), since a
backlog drains over such a link and the ratio says how much of it the
uploader uses. With --uplink 0 both sides use plain loopback: there the raw
publish moves bytes packed in advance at memory speed, while the uploader
keeps an in-flight budget of a few batches and waits for the ingester's
acks (the sink syncs each batch before it acks it), using a fraction of a
core, so the ratio stays far below 1 (0.13 to 0.16 on a 2-core VM) and
drain_records_per_s measures that round trip more than the vehicle.
cpu_ratio_vs_raw on loopback is the vehicle's side's figure: its CPU per
record, whatever the link's pace.`

// parseSyncFlags parses the suite's flags, applies --quick and checks
// them.
func parseSyncFlags(args []string, stderr io.Writer) (syncFlags, error) {
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
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write CPU profiles of this process over each round's raw read+pack+publish, raw publish and uploader drain to <file>.pack-<round>, <file>.raw-<round> and <file>.uploader-<round> (the profiler's cost is in the CPU figures then)")
	fs.BoolVar(&f.quick, "quick", false, "a short run (100000 records, 5 rounds, 3 broker restarts; about 45 s at the default uplink)")
	if err := parseSuite(fs, "sync", syncAbout, args, stderr); err != nil {
		return f, err
	}
	if f.quick {
		f.records, f.rounds, f.restarts = 100000, 5, 3
	}
	return f, f.validate()
}

// validate names the first flag out of range.
func (f syncFlags) validate() error {
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
	return nil
}

// baselineWindow is the baselines' QoS 1 publishes in flight: --raw-window,
// else --window, else the uploader's default Window.
func (f syncFlags) baselineWindow() int {
	if f.rawWindow != 0 {
		return f.rawWindow
	}
	if f.window != 0 {
		return f.window
	}
	return edge.DefaultWindow
}

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

// profileFile is where --cpuprofile puts the profile of a round's phase,
// or "" without it.
func (f syncFlags) profileFile(phase string, round int) string {
	if f.cpuProfile == "" {
		return ""
	}
	return fmt.Sprintf("%s.%s-%d", f.cpuProfile, phase, round)
}
