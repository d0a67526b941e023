package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
)

// The checkpoint subcommands (list, verify, export, prune) read the
// fleet's checkpoint store: package sync/blob's blob.Dir (the chunks) and
// blob.Catalog (the complete checkpoints) under one root, which the
// checkpoint receiver of `vigil-fleet ingest` writes.

// checkpointDirName is the checkpoint store's directory beside a sink
// directory: --sink /srv/fleet/sink stores checkpoints in
// /srv/fleet/checkpoints unless --store-dir says otherwise.
const checkpointDirName = "checkpoints"

// defaultCheckpointDir is the checkpoint store root that goes with the
// sink directory sinkDir: its sibling named checkpointDirName.
func defaultCheckpointDir(sinkDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(sinkDir)), checkpointDirName)
}

// checkpointRoot resolves the checkpoint store root from --store-dir and
// --sink: --store-dir when given, else defaultCheckpointDir(--sink).
func checkpointRoot(storeDir, sinkDir string) (string, error) {
	switch {
	case storeDir != "":
		return storeDir, nil
	case sinkDir != "":
		return defaultCheckpointDir(sinkDir), nil
	}
	return "", errors.New("--store-dir is required (or --sink, whose sibling directory " + checkpointDirName + " is the default)")
}

// ckptStoreFlags are the flags that name the checkpoint store.
type ckptStoreFlags struct{ storeDir, sink *string }

func addCkptStoreFlags(fs *flag.FlagSet) ckptStoreFlags {
	return ckptStoreFlags{
		storeDir: fs.String("store-dir", "", "the fleet's checkpoint store (blobs/ and checkpoints/ under it, as ingest's checkpoint receiver writes them); default: the directory "+checkpointDirName+" beside --sink"),
		sink:     fs.String("sink", "", "the sink directory of `vigil-fleet ingest`: only to find the default --store-dir"),
	}
}

// ckptStore is an opened checkpoint store.
type ckptStore struct {
	root  string
	blobs *blob.Dir
	cat   *blob.Catalog
}

// open opens an existing checkpoint store for the subcommand cmd; a
// missing root is an error rather than a new, empty store.
func (f ckptStoreFlags) open(cmd string) (*ckptStore, error) {
	root, err := checkpointRoot(*f.storeDir, *f.sink)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	flagName := "--store-dir"
	if *f.storeDir == "" {
		flagName = "--store-dir (default from --sink)"
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", cmd, flagName, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: %s %s: not a directory", cmd, flagName, root)
	}
	blobs, err := blob.NewDir(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", cmd, flagName, err)
	}
	cat, err := blob.NewCatalog(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", cmd, flagName, err)
	}
	return &ckptStore{root: root, blobs: blobs, cat: cat}, nil
}

// vehicles returns vehicle, checked, or every vehicle of the catalog when
// vehicle is empty.
func (s *ckptStore) vehicles(cmd, vehicle string) ([]string, error) {
	if vehicle != "" {
		if !blob.ValidVehicle(vehicle) {
			return nil, fmt.Errorf("%s: --vehicle %q: not a vehicle name", cmd, vehicle)
		}
		return []string{vehicle}, nil
	}
	vs, err := s.cat.Vehicles()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return vs, nil
}

// byStore splits a vehicle's manifests by store, each oldest first, the
// stores in order of their newest checkpoint.
func byStore(ms []*manifest.Manifest) [][]*manifest.Manifest {
	idx := map[string]int{}
	var out [][]*manifest.Manifest
	for _, m := range ms {
		i, ok := idx[m.StoreID]
		if !ok {
			i = len(out)
			idx[m.StoreID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], m)
	}
	slices.SortStableFunc(out, func(a, b []*manifest.Manifest) int {
		x, y := a[len(a)-1], b[len(b)-1]
		if x.Seq != y.Seq {
			if x.Seq < y.Seq {
				return -1
			}
			return 1
		}
		return x.Created.Compare(y.Created)
	})
	return out
}

func where(vehicle, store string) string { return "vehicle " + vehicle + " store " + store }

func setupCheckpointList(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	sf := addCkptStoreFlags(fs)
	vehicle := fs.String("vehicle", "", "list this vehicle's checkpoints only (default: every vehicle's)")
	return func(_ context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("checkpoint list: unexpected arguments %q", args)
		}
		s, err := sf.open("checkpoint list")
		if err != nil {
			return err
		}
		vs, err := s.vehicles("checkpoint list", *vehicle)
		if err != nil {
			return err
		}
		return listCheckpoints(g.stdout, s.cat, vs, time.Now())
	}
}

// listCheckpoints prints a table of the complete checkpoints of vs: per
// vehicle and store, oldest first.
func listCheckpoints(w io.Writer, cat *blob.Catalog, vs []string, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VEHICLE\tSTORE\tCHECKPOINT\tKIND\tBASE\tCREATED\tAGE\tSTREAMS\tSIZE\tCHAIN\tVERIFIED")
	n := 0
	for _, v := range vs {
		ms, err := cat.Manifests(v)
		if err != nil {
			tw.Flush() //nolint:errcheck // the error below is the one to report
			return fmt.Errorf("checkpoint list: vehicle %s: %w", v, err)
		}
		for _, sms := range byStore(ms) {
			for _, m := range sms {
				chain := "whole"
				if _, err := manifest.Chain(sms, m.ID, v, where(v, m.StoreID)); err != nil {
					chain = "BROKEN: " + strings.TrimPrefix(err.Error(), manifest.ErrChain.Error()+": ")
				}
				base := m.Base
				if base == "" {
					base = "-"
				}
				verified, err := lastVerification(cat, v, m, now)
				if err != nil {
					tw.Flush() //nolint:errcheck // the error below is the one to report
					return fmt.Errorf("checkpoint list: %w", err)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v, m.StoreID, m.ID, m.Kind, base,
					m.Created.UTC().Format(time.RFC3339), age(now.Sub(m.Created)), streamCounts(m), size(m.Bytes), chain, verified)
				n++
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d checkpoints of %d vehicles\n", n, len(vs))
	return err
}

// lastVerification says when `checkpoint verify` last checked m, how
// deep (chain rules only, or every chunk read back) and with what result:
// "never", "ok 2h0m0s ago (data)", "FAIL 5m0s ago (chain): <problem>".
func lastVerification(cat *blob.Catalog, vehicle string, m *manifest.Manifest, now time.Time) (string, error) {
	v, ok, err := cat.LastVerification(vehicle, m.StoreID, m.ID)
	if err != nil || !ok {
		return "never", err
	}
	depth := "chain"
	if v.ReadData {
		depth = "data"
	}
	if v.OK {
		return fmt.Sprintf("ok %s ago (%s)", age(now.Sub(v.At)), depth), nil
	}
	return fmt.Sprintf("FAIL %s ago (%s): %s", age(now.Sub(v.At)), depth, v.Problem), nil
}

// streamCounts is "name=count ..." of what a restore of m's chain holds.
func streamCounts(m *manifest.Manifest) string {
	if len(m.Streams) == 0 {
		return "-"
	}
	parts := make([]string, len(m.Streams))
	for i, s := range m.Streams {
		parts[i] = fmt.Sprintf("%s=%d", s.Name, s.Count)
	}
	return strings.Join(parts, ",")
}

func age(d time.Duration) string {
	switch {
	case d < 0:
		return "future"
	case d < time.Minute:
		return d.Truncate(time.Second).String()
	case d < 48*time.Hour:
		return d.Truncate(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
