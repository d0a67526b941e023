package main

// The models suite: a model's way onto the vehicle (issue 15, item 8).
//
// Download: a signed bundle of the demo's primary-v2 model, padded with a
// data file to --bundle-mb, sits in a bundle store served by
// sync/bundlelink's Server (vigil-fleet serve's library), connected to a
// Mosquitto started here directly, as the fleet's side is. The vehicle's
// side, an edge.Uploader over a fresh outbox carrying a
// bundlelink.Fetcher's subscription as vigild wires them, reaches the
// broker through the emulated link of uplink.go, limited to --mbps in
// both directions. The baseline is rawRound (syncbaseline.go) turned
// round: a bare publisher on the fleet's side publishes the bundle's
// chunks (the same sizes, the fetcher's chunk layout) at QoS 1 with the
// fetcher's window of publishes awaiting PUBACK, to a bare QoS 1
// subscriber through the link. Each round times both, in alternating
// order; the staged bundle is verified as the vehicle verifies it.
//
// Swap: the three demo models behind a router and the watchdog, driven at
// --rate with --deadline; the primary is replaced by the downloaded
// bundle's model with inference.Router.Replace (load, warm, swap, drain),
// then rolled back to the original the same way, --swaps times.
//
// Files: models.go (flags, the run, the closing lines), modelsbundle.go
// (the signed bundle), modelsdownload.go (the link, the fleet's server,
// the vehicle's fetcher, the rounds), modelsswap.go (the ladder and the
// swaps) and modelsload.go (the frame stream and its phases).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/sync/bundlelink"
	"github.com/vigil-av/vigil/sync/mqtttest/mosquitto"
)

type modelsFlags struct {
	models    string
	library   string
	mbps      float64
	rtt       time.Duration
	bundleMB  float64
	rounds    int
	window    int
	rate      float64
	deadline  time.Duration
	swaps     int
	hold      time.Duration
	mosquitto string
	dir       string
	timeout   time.Duration
	quick     bool
}

// swapMargin is how far before a Replace starts and after it returns the
// requests count as the swap's.
const swapMargin = time.Second

const modelsAbout = `Download: a signed bundle (the demo's primary-v2 model, padded with a data
file to --bundle-mb) is served by sync/bundlelink's Server, the library of
vigil-fleet serve, from a bundle store, on a Mosquitto started here; the
vehicle's side (edge.Uploader over a fresh outbox, carrying a
bundlelink.Fetcher with vigild's settings) reaches the broker over an
emulated link of --mbps in both directions with --rtt of round trip. The
baseline, in the same round: a bare publisher on the fleet's side publishes
the same chunks (the fetcher's layout, 127 KiB) at QoS 1 with the fetcher's
window of publishes awaiting PUBACK to a bare QoS 1 subscriber through the
same link, timed from its connection until the subscriber has the last
byte. The download is timed from Fetch until the bundle is staged (index,
chunks written and synced); the staged bundle is verified as the vehicle
verifies it. download_ratio_vs_raw is raw time over download time, the
median of the rounds'.

Swap: the demo's primary, shadow and degraded models on the CPU behind a
router and the watchdog (defaults), driven at --rate frames per second with
--deadline. After --hold, the primary is replaced by the downloaded model
with inference.Router.Replace (load and warm, contract check, swap, drain of
the old model), and after another --hold rolled back to the original the
same way; --swaps times. swap_missed and rollback_missed count the frames
sent from 1 s before a Replace began until 1 s after it returned that were
late, NO_RESULT, or dropped for want of a free worker; swap_ms is the
median wall time of the promotions' Replace calls.`

// parseModelsFlags parses the suite's flags, applies --quick and checks
// them.
func parseModelsFlags(args []string, stderr io.Writer) (modelsFlags, error) {
	var f modelsFlags
	fs := flag.NewFlagSet("vigil-bench models", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.models, "models", "", "directory with primary.onnx, shadow.onnx, degraded.onnx and primary-v2.onnx (default: build/models if it has them, else the demo models generated into a temporary directory)")
	fs.StringVar(&f.library, "ort-library", "", "ONNX Runtime shared library (default: $"+inference.LibraryEnv+" or the one `make deps` fetched)")
	fs.Float64Var(&f.mbps, "mbps", defaultUplinkMbps, "the emulated vehicle link's rate, Mbit/s, in each direction")
	fs.DurationVar(&f.rtt, "rtt", 40*time.Millisecond, "round-trip time the emulated link adds (half each way)")
	fs.Float64Var(&f.bundleMB, "bundle-mb", 16, "bundle size in MB (10^6 bytes): the model, padded with a data file; no padding below the model's size")
	fs.IntVar(&f.rounds, "rounds", 5, "download rounds, each a raw transfer and a bundle download")
	fs.IntVar(&f.window, "window", 0, "bundlelink.FetcherConfig.Window, requests awaiting answers, and the raw publisher's publishes awaiting PUBACK (0: the fetcher's default, 4)")
	fs.Float64Var(&f.rate, "rate", 30, "frames per second during the swaps")
	fs.DurationVar(&f.deadline, "deadline", 33*time.Millisecond, "deadline of each frame")
	fs.IntVar(&f.swaps, "swaps", 3, "promotions, each followed by a rollback")
	fs.DurationVar(&f.hold, "hold", 5*time.Second, "frames sent before the first Replace, between two and after the last (at least 2s, so that the swaps' windows stay apart)")
	fs.StringVar(&f.mosquitto, "mosquitto", "", "mosquitto executable (default: mosquitto on PATH, then /usr/sbin/mosquitto)")
	fs.StringVar(&f.dir, "dir", "", "directory for the bundle, the stores, the staging directory and the broker's files (default: the system's temporary directory)")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "longest one transfer (raw or download) may take before the suite fails")
	fs.BoolVar(&f.quick, "quick", false, "a short run: --bundle-mb 4 --rounds 3 --swaps 1 --hold 2.5s unless given (about 25 s at the default link)")
	if err := parseSuite(fs, "models", modelsAbout, args, stderr); err != nil {
		return f, err
	}
	if f.quick { // the flags given keep their values
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		for name, value := range map[string]string{"bundle-mb": "4", "rounds": "3", "swaps": "1", "hold": "2.5s"} {
			if !set[name] {
				fs.Set(name, value) //nolint:errcheck // constant values that parse
			}
		}
	}
	return f, f.validate()
}

// validate names the first flag out of range.
func (f modelsFlags) validate() error {
	switch {
	case f.mbps <= 0 || f.mbps > 10000:
		return fmt.Errorf("--mbps %g: want a rate in (0, 10000] Mbit/s", f.mbps)
	case f.rtt < 0 || f.rtt > 10*time.Second:
		return fmt.Errorf("--rtt %v: want 0 to 10s", f.rtt)
	case f.bundleMB <= 0 || f.bundleMB > 1000:
		return fmt.Errorf("--bundle-mb %g: want a size in (0, 1000] MB", f.bundleMB)
	case f.rounds < 1:
		return fmt.Errorf("--rounds %d: need at least 1", f.rounds)
	case f.window < 0 || f.window > 64:
		return fmt.Errorf("--window %d: want 0 (the fetcher's default) to 64", f.window)
	case f.rate <= 0 || f.rate > 1000:
		return fmt.Errorf("--rate %g: want 0 < rate ≤ 1000 frames per second", f.rate)
	case f.deadline <= 0:
		return fmt.Errorf("--deadline %v: must be positive", f.deadline)
	case f.swaps < 1:
		return fmt.Errorf("--swaps %d: need at least 1", f.swaps)
	case f.hold < 2*swapMargin:
		return fmt.Errorf("--hold %v: need at least %v, so that the swaps' windows stay apart", f.hold, 2*swapMargin)
	case f.timeout <= 0:
		return fmt.Errorf("--timeout %v: want a positive duration", f.timeout)
	}
	return nil
}

// fetchWindow is the fetcher's window, and the raw publisher's.
func (f modelsFlags) fetchWindow() int {
	if f.window == 0 {
		return bundlelink.DefaultWindow
	}
	return f.window
}

func runModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseModelsFlags(args, stderr)
	if err != nil {
		return err
	}
	models, cleanup, err := findSwapModels(f.models)
	if err != nil {
		return err
	}
	defer cleanup()
	bin, err := mosquitto.Find(f.mosquitto)
	switch {
	case err != nil && f.mosquitto != "":
		return fmt.Errorf("--mosquitto %s: %w", f.mosquitto, err)
	case err != nil:
		return fmt.Errorf("models: %w, or name it with --mosquitto", err)
	}
	if err := inference.Init(f.library); err != nil {
		return err
	}
	work, err := os.MkdirTemp(f.dir, "vigil-bench-models-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	b, err := buildBundle(work, models, int64(f.bundleMB*1e6))
	if err != nil {
		return fmt.Errorf("build the bundle: %w", err)
	}
	fmt.Fprintf(stdout, "suite models: bundle %s v%d (%.12s), %d files, %.2f MB (model %.2f MB), %d chunks of up to %d KiB; %d rounds; swaps at %.0f frames/s, deadline %v\n",
		b.m.Name, b.m.Version, b.hash, len(b.m.Files), float64(b.size)/1e6, float64(b.modelSize)/1e6, len(b.chunks), bundlelink.MaxChunkBytes>>10,
		f.rounds, f.rate, f.deadline)
	dl, err := runDownloads(ctx, f, bin, work, b, stdout)
	if err != nil {
		return err
	}
	sw, err := runSwaps(ctx, f, models, dl.modelPath, stdout)
	if err != nil {
		return err
	}
	promo := make([]time.Duration, 0, len(sw.promotions))
	for _, p := range sw.promotions {
		promo = append(promo, p.replace())
	}
	fmt.Fprintf(stdout, "RESULT suite=models bundle_mb=%.2f download_ratio_vs_raw=%.3f swap_missed=%d swap_ms=%.0f rollback_missed=%d\n",
		float64(b.size)/1e6, median(dl.ratios), sw.missed(sw.promotions), millis(percentile(promo, 0.5)), sw.missed(sw.rollbacks))
	return nil
}
