// Command vigild is Vigil's daemon: it keeps a vehicle's inference answering
// by its deadline, failing over from the primary GPU model to the shadow and
// to the degraded CPU model, and serves supervisors on a Unix socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/vigil-av/vigil/agent"
	"github.com/vigil-av/vigil/cmd/internal/cli"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/internal/version"
)

const usage = `usage: vigild [flags]
       vigild restore --from DIR [--at ID|TIME] [--data-dir DIR] [--force]   (see vigild restore --help)

Runs the Vigil daemon. Configuration comes from a YAML file (--config; see
docs/operations.md for every field) over built-in defaults; the flags below
override the file. It starts the telemetry buffer and the models (warmed)
side by side, then the watchdog, hardware probe and socket, and only then
accepts requests; then,
when sync.enabled, the cloud link (the uploader and, with
sync.commands.enabled, signed fleet commands; see docs/fleet.md).
SIGTERM or SIGINT stops it gracefully.
Under systemd it sends READY=1, STATUS= and, while its loops are alive,
WATCHDOG=1.

flags:
`

func main() { cli.Main("vigild", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "restore" {
		return restore(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("vigild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (default: built-in defaults)")
	socket := fs.String("socket", "", "socket path (socket.path)")
	modelsDir := fs.String("models-dir", "", "directory of the model files (models.dir)")
	library := fs.String("ort-library", "", "ONNX Runtime shared library (ort_library)")
	dataDir := fs.String("data-dir", "", "data directory (data_dir)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (log.level)")
	logFormat := fs.String("log-format", "", "json or console (log.format)")
	check := fs.Bool("check-config", false, "validate the configuration, print it, and exit")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "how long a graceful stop may take")
	showVersion := fs.Bool("version", false, "print the version, the commit and the ONNX Runtime version (the library's, from --ort-library or the default place, when it loads), and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("vigild", ortVersion(*library)))
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	cfg := agent.DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = agent.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Socket.Path, *socket)
	set(&cfg.Models.Dir, *modelsDir)
	set(&cfg.ORTLibrary, *library)
	set(&cfg.DataDir, *dataDir)
	set(&cfg.Log.Level, *logLevel)
	set(&cfg.Log.Format, *logFormat)
	if err := cfg.Validate(); err != nil {
		if *configPath != "" {
			return fmt.Errorf("config %s: %w", *configPath, err)
		}
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "configuration OK: vehicle %s, socket %s, models in %s, policy %s, deadline %v\n",
			cfg.VehicleID, cfg.Socket.Path, cfg.Models.Dir, cfg.Watchdog.Policy, cfg.Watchdog.Deadline)
		return nil
	}
	log, level, err := agent.NewLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()
	if os.Getenv("GOMEMLIMIT") == "" && cfg.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMB) << 20)
	}
	d, err := agent.Start(ctx, cfg, log, level)
	if err != nil {
		return err
	}
	var served error
	select {
	case <-ctx.Done():
	case served = <-d.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	return errors.Join(served, d.Close(sctx))
}

// ortVersion is the version of the ONNX Runtime library vigild would load
// (library, else $VIGIL_ORT_LIBRARY, else the default place), asked of the
// library itself; the release the build expects when none loads.
func ortVersion(library string) string {
	if inference.Init(library) != nil {
		return version.ONNXRuntime
	}
	info, err := inference.Runtime()
	if err != nil {
		return version.ONNXRuntime
	}
	return info.Version
}
