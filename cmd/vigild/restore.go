package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/vigil-av/vigil/agent"
	"github.com/vigil-av/vigil/storage/checkpoint"
)

const restoreUsage = `usage: vigild restore --from DIR [--at ID|TIME] [--data-dir DIR] [--config F] [--force]

Restores the vehicle's telemetry store from checkpoints onto this unit (a
replacement), into the store directory vigild then starts on (storage.dir,
else <data_dir>/telemetry). --from is a checkpoint chain directory: a
vehicle's own checkpoint directory, or what vigil-fleet checkpoint export
wrote. --at picks the checkpoint: its id (000012-incremental), or an RFC 3339
time (the newest checkpoint created at or before it); by default the newest.

Every chunk of the chain (the full, then the incrementals or differential up
to it) is verified before anything is loaded; the records are checked against
the checkpoint's manifest; nothing is left behind on any error. The restored
store is a new incarnation: a new store id, with a lineage naming the parent
store, the checkpoint and each stream's last sequence number in it, so that
its uploads never collide with what the dead unit sent (docs/fleet.md,
"Telemetry batches"), and fleet commands issued before the restore are
refused. A target that is not empty is refused unless --force, which moves it
to <dir>.before-restore-<checkpoint id>.

flags:
`

// restore is vigild restore.
func restore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigild restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "checkpoint chain directory (required)")
	at := fs.String("at", "", "checkpoint id or RFC 3339 time (default: the newest)")
	dataDir := fs.String("data-dir", "", "data directory (data_dir)")
	configPath := fs.String("config", "", "YAML configuration file (default: built-in defaults)")
	force := fs.Bool("force", false, "move a non-empty store directory aside instead of refusing")
	fs.Usage = func() {
		fmt.Fprint(stderr, restoreUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("restore: unexpected argument %q (see vigild restore --help)", fs.Arg(0))
	}
	if *from == "" {
		return errors.New("restore: --from is required (see vigild restore --help)")
	}
	cfg := agent.DefaultConfig()
	vehicle := "" // any, unless a configuration names this vehicle
	if *configPath != "" {
		var err error
		if cfg, err = agent.LoadConfig(*configPath); err != nil {
			return err
		}
		vehicle = cfg.VehicleID
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	id, err := pickCheckpoint(*from, *at)
	if err != nil {
		return err
	}
	target := storeDir(cfg)
	start := time.Now()
	r, err := checkpoint.RestoreChain(ctx, *from, id, target, checkpoint.RestoreOptions{
		Vehicle: vehicle, Force: *force, Reincarnate: true, RestoredAt: start})
	if err != nil {
		return fmt.Errorf("restore into %s: %w", target, err)
	}
	report(stdout, r, target, time.Since(start))
	return nil
}

// storeDir is the store's directory as the daemon opens it: storage.dir,
// else <data_dir>/telemetry (agent's Config.storeDir).
func storeDir(cfg agent.Config) string {
	if cfg.Storage.Dir != "" {
		return cfg.Storage.Dir
	}
	return filepath.Join(cfg.DataDir, "telemetry")
}

// pickCheckpoint turns --at into a checkpoint id: "" (the newest) and ids
// pass through; a time picks the newest checkpoint created at or before
// it.
func pickCheckpoint(from, at string) (string, error) {
	when, err := time.Parse(time.RFC3339Nano, at)
	if at == "" || err != nil {
		return at, nil
	}
	ms, err := checkpoint.List(from)
	if err != nil {
		return "", fmt.Errorf("restore: --at %s: %w", at, err)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Seq < ms[j].Seq })
	for _, m := range slices.Backward(ms) {
		if !m.Created.After(when) {
			return m.ID, nil
		}
	}
	return "", fmt.Errorf("restore: --at %s: no checkpoint in %s was created at or before it (%d checkpoints)", at, from, len(ms))
}

// report prints what was restored.
func report(w io.Writer, r *checkpoint.Restored, target string, took time.Duration) {
	last := r.Chain[len(r.Chain)-1]
	fmt.Fprintf(w, "restored checkpoint %s of vehicle %s into %s\n", last.ID, last.Vehicle, target)
	fmt.Fprint(w, "chain:")
	for _, m := range r.Chain {
		fmt.Fprintf(w, " %s (%s)", m.ID, m.Created.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	for _, s := range last.Streams {
		fmt.Fprintf(w, "  %-10s %8d records, last seq %d\n", s.Name, s.Count, s.Last())
	}
	l := r.Lineage
	fmt.Fprintf(w, "new store %016x, parent store %016x, restored at %s\n", r.Store, l.Parent, l.RestoredAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "restore took %.2f s\n", took.Seconds())
}
