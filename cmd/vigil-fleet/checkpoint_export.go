package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
)

func setupCheckpointExport(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	sf := addCkptStoreFlags(fs)
	vehicle := fs.String("vehicle", "", "the vehicle whose checkpoint to export; required")
	store := fs.String("store", "", "the store id (16 hex digits) whose chain to export (default: the store of --at, else of the vehicle's newest checkpoint)")
	at := fs.String("at", "", "the checkpoint id the chain ends at (default: the store's newest)")
	out := fs.String("out", "", "the directory to write the chain into, as <out>/<id>/chunk-NNNNNN and manifest.json: what storage/checkpoint.Restore and `vigild restore --from` read; must be empty or missing; required")
	return func(ctx context.Context, args []string) error {
		switch {
		case len(args) > 0:
			return fmt.Errorf("checkpoint export: unexpected arguments %q", args)
		case *vehicle == "":
			return errors.New("checkpoint export: --vehicle is required")
		case !blob.ValidVehicle(*vehicle):
			return fmt.Errorf("checkpoint export: --vehicle %q: not a vehicle name", *vehicle)
		case *out == "":
			return errors.New("checkpoint export: --out is required: the directory to write the chain into")
		case *at != "" && !manifest.ValidID(*at):
			return fmt.Errorf("checkpoint export: --at %q: not a checkpoint id (<seq>-<kind>, e.g. 000012-incremental)", *at)
		}
		s, err := sf.open("checkpoint export")
		if err != nil {
			return err
		}
		chain, err := exportChain(s.cat, *vehicle, *store, *at)
		if err != nil {
			return fmt.Errorf("checkpoint export: %w", err)
		}
		n, err := export(ctx, s, chain, *out)
		if err != nil {
			return fmt.Errorf("checkpoint export: --out %s: %w", *out, err)
		}
		last := chain[len(chain)-1]
		fmt.Fprintf(g.stdout, "exported %d checkpoints (%s back to %s) of vehicle %s store %s to %s: %d chunks, %s, every hash checked\n",
			len(chain), last.ID, chain[0].ID, last.Vehicle, last.StoreID, *out, n, size(chainBytes(chain)))
		fmt.Fprintf(g.stdout, "restore it on the unit with `vigild restore --from %s` (checkpoint %s)\n", *out, last.ID)
		return nil
	}
}

// exportChain picks the store and returns the chain that ends at at.
func exportChain(cat *blob.Catalog, vehicle, store, at string) ([]*manifest.Manifest, error) {
	ms, err := cat.Manifests(vehicle)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("--vehicle %s: no complete checkpoints in the store", vehicle)
	}
	if store == "" {
		store = ms[len(ms)-1].StoreID
		if at != "" {
			var stores []string
			for _, m := range ms {
				if m.ID == at {
					stores = append(stores, m.StoreID)
				}
			}
			switch len(stores) {
			case 0:
				return nil, fmt.Errorf("--at %s: vehicle %s has no such checkpoint", at, vehicle)
			case 1:
				store = stores[0]
			default:
				return nil, fmt.Errorf("--at %s: stores %v of vehicle %s both have it: give --store", at, stores, vehicle)
			}
		}
	}
	var sms []*manifest.Manifest
	for _, m := range ms {
		if m.StoreID == store {
			sms = append(sms, m)
		}
	}
	if len(sms) == 0 {
		return nil, fmt.Errorf("--store %s: vehicle %s has no checkpoints of that store", store, vehicle)
	}
	return manifest.Chain(sms, at, vehicle, where(vehicle, store))
}

func chainBytes(chain []*manifest.Manifest) int64 {
	var n int64
	for _, m := range chain {
		n += m.Bytes
	}
	return n
}

// export writes chain into out (empty or missing) and returns the number
// of chunks written. Each checkpoint is written to a hidden directory,
// every chunk checked as it is read from the store and the copy verified
// (manifest.Verify) after the rename. Any error removes what it wrote.
func export(ctx context.Context, s *ckptStore, chain []*manifest.Manifest, out string) (n int, err error) {
	created, err := prepareOut(out)
	if err != nil {
		return 0, err
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		for _, p := range written {
			os.RemoveAll(p) //nolint:errcheck // best effort; the error is err
		}
		if created {
			os.Remove(out) //nolint:errcheck
		}
	}()
	src := blob.Source(ctx, s.blobs)
	for _, m := range chain {
		tmp := filepath.Join(out, ".tmp-"+m.ID)
		final := filepath.Join(out, m.ID)
		written = append(written, tmp)
		if err := os.Mkdir(tmp, 0o750); err != nil {
			return n, err
		}
		for i, c := range m.Chunks {
			b, err := manifest.ReadChunk(src, m, i)
			if err != nil {
				return n, err
			}
			if err := writeFileSync(filepath.Join(tmp, c.Name), b); err != nil {
				return n, err
			}
			n++
		}
		raw, err := s.cat.Raw(m.Vehicle, m.StoreID, m.ID)
		if err != nil {
			return n, err
		}
		if err := writeFileSync(filepath.Join(tmp, manifest.Name), raw); err != nil {
			return n, err
		}
		if err := syncDirPath(tmp); err != nil {
			return n, err
		}
		if err := os.Rename(tmp, final); err != nil {
			return n, err
		}
		written[len(written)-1] = final
		if err := manifest.Verify(ctx, manifest.Dir(out), m); err != nil {
			return n, fmt.Errorf("the copy: %w", err)
		}
	}
	return n, syncDirPath(out)
}

// prepareOut refuses an out that exists and is not an empty directory,
// and creates a missing one; created says it did.
func prepareOut(out string) (created bool, err error) {
	ents, err := os.ReadDir(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(out, 0o750); err != nil {
			return false, err
		}
		return true, nil
	case err != nil:
		return false, err
	case len(ents) > 0:
		return false, fmt.Errorf("not empty (%d entries, e.g. %s): export into an empty or new directory", len(ents), ents[0].Name())
	}
	return false, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close() //nolint:errcheck
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close() //nolint:errcheck
		return err
	}
	return f.Close()
}

func syncDirPath(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
