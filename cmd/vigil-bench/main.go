// Command vigil-bench runs Vigil's qualification benchmarks on a device. Each
// suite measures Vigil against a bare baseline in the same process and the
// same run, and prints ratios, because absolute figures on shared or noisy
// machines mean little. The last line of a suite is machine-readable:
//
//	RESULT suite=<name> key=value ...
//
// main.go dispatches to the suites, one file each: inference.go,
// storage.go, failover.go and socket.go. The sync suite, the largest, is
// sync.go (the run and its closing lines), syncflags.go, syncrecords.go
// (the inference summaries, the filled store, live records),
// syncbaseline.go (the bare publishers), syncrounds.go (a round: the
// baselines, then the uploader with the ingester and a sink),
// syncacks.go, synccheck.go (every record in the sink exactly once),
// syncrestart.go (the broker-restart scenario), syncbroker.go (the
// Mosquitto it starts), synccloud.go and synccloudproc.go (the cloud
// side, a process of its own: this executable started again with
// VIGIL_BENCH_SYNC_CLOUD set, which main checks first) and uplink.go
// (the emulated vehicle link). The
// models suite is models.go (flags, the run, the RESULT line),
// modelsbundle.go, modelsdownload.go, modelsswap.go and modelsload.go.
// The restart suite is restart.go (flags, the rounds, the RESULT line),
// restartvigild.go (vigild as a process of its own, which the socket
// suite also starts, its memory, the probe of its first answer),
// restartcloud.go (the backlog, the broker, the ingester, the acks) and
// restartphases.go (the start phases in vigild's log).
// stats.go has the percentiles.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vigil-av/vigil/cmd/internal/cli"
	"github.com/vigil-av/vigil/internal/version"
)

type suite struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var suites = []suite{
	{"inference", "the primary model through the inference package vs a bare onnxruntime_go session", runInference},
	{"storage", "telemetry ingest through the storage package (group commit) vs raw Badger WriteBatch + one Sync", runStorage},
	{"failover", "the three models through the router and watchdog at a frame rate, with faults injected on a schedule", runFailover},
	{"socket", "a frame through the socket protocol and a trivial handler vs a bare Unix-socket echo; request rate", runSocket},
	{"checkpoint", "full, incremental and differential checkpoints under ingest vs a bare backup stream; upload, export and verified restore", runCheckpoint},
	{"sync", "an offline backlog drained over MQTT by the edge uploader into ingester and sink vs bare QoS 1 publishes of the same batches", runSync},
	{"models", "a signed bundle downloaded over the emulated link vs bare QoS 1 publishes of its chunks; promotion and rollback under a 30 Hz stream", runModels},
	{"restart", "vigild killed with SIGKILL and started again over a backlog of a million records: to its socket, its first OK answer, the link draining", runRestart},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: vigil-bench <suite> [flags]")
	fmt.Fprintln(w, "       vigil-bench --version")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Qualification benchmarks: each suite compares Vigil with a bare baseline in")
	fmt.Fprintln(w, "the same run and ends with a machine-readable RESULT line.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "suites:")
	for _, s := range suites {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "`vigil-bench <suite> --help` lists a suite's flags.")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errors.New("no suite given")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return nil
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, version.String("vigil-bench", version.ONNXRuntime))
		return nil
	}
	for _, s := range suites {
		if s.name == args[0] {
			return s.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown suite %q", args[0])
}

func main() {
	// The sync suite starts this executable again as its cloud side.
	if broker, ok := os.LookupEnv(syncCloudEnv); ok {
		os.Exit(syncCloudMain(broker, os.Stdin, os.Stdout, os.Stderr))
	}
	cli.Main("vigil-bench", run)
}

// parseSuite parses a suite's flags: --help prints the usage line, about
// (the suite's description) and the flags; an argument left over is an
// error.
func parseSuite(fs *flag.FlagSet, name, about string, args []string, stderr io.Writer) error {
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: vigil-bench %s [flags]\n\n%s\n\n", name, about)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return nil
}
