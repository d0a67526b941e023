package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
)

func setupCheckpointPrune(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	sf := addCkptStoreFlags(fs)
	vehicle := fs.String("vehicle", "", "the vehicle whose checkpoints to prune; required")
	keepFull := fs.Int("keep-full", 0, "keep the newest N full checkpoints, every checkpoint built on them and every base those need; required, at least 1")
	grace := fs.Duration("grace", 24*time.Hour, "delete an unreferenced blob only when it was last put longer ago than this: the chunks of an upload in progress have no manifest yet")
	dryRun := fs.Bool("dry-run", false, "print what would be deleted and delete nothing")
	return func(ctx context.Context, args []string) error {
		switch {
		case len(args) > 0:
			return fmt.Errorf("checkpoint prune: unexpected arguments %q", args)
		case *vehicle == "":
			return errors.New("checkpoint prune: --vehicle is required")
		case !blob.ValidVehicle(*vehicle):
			return fmt.Errorf("checkpoint prune: --vehicle %q: not a vehicle name", *vehicle)
		case *keepFull < 1:
			return fmt.Errorf("checkpoint prune: --keep-full %d: want at least 1 (the newest N fulls are kept)", *keepFull)
		case *grace < 0:
			return fmt.Errorf("checkpoint prune: --grace %v: must not be negative", *grace)
		}
		s, err := sf.open("checkpoint prune")
		if err != nil {
			return err
		}
		p := &pruner{w: g.stdout, s: s, dryRun: *dryRun}
		if err := p.catalog(*vehicle, *keepFull); err != nil {
			return fmt.Errorf("checkpoint prune: %w", err)
		}
		if err := p.blobs(ctx, time.Now().Add(-*grace)); err != nil {
			return fmt.Errorf("checkpoint prune: %w", err)
		}
		return nil
	}
}

// prunePlan splits ms (one vehicle's, any stores) into what retention
// keeps and what it deletes: the newest keepFull fulls, every checkpoint
// whose chain leads back to one of them, and every base a kept one needs
// (manifest.Needed) are kept. A checkpoint whose chain has a gap is kept
// when it is newer than the oldest kept full (its base may yet arrive),
// else deleted. Both lists keep ms's order.
func prunePlan(ms []*manifest.Manifest, keepFull int) (keep, drop []*manifest.Manifest) {
	var fulls []*manifest.Manifest
	for _, m := range ms {
		if m.Kind == manifest.Full {
			fulls = append(fulls, m)
		}
	}
	keptFull := map[*manifest.Manifest]bool{}
	for _, f := range fulls[max(0, len(fulls)-keepFull):] {
		keptFull[f] = true
	}
	oldestKept := -1 // the index of the oldest kept full (none: keep every gapped chain)
	for i, m := range ms {
		if keptFull[m] {
			oldestKept = i
			break
		}
	}
	kept := map[*manifest.Manifest]bool{}
	for _, sms := range byStore(ms) {
		byID := map[string]*manifest.Manifest{}
		for _, m := range sms {
			byID[m.ID] = m
		}
		var ids []string
		for _, m := range sms {
			root := m
			for root != nil && root.Kind != manifest.Full {
				b := byID[root.Base]
				if b != nil && b.Seq >= root.Seq {
					b = nil // a base that is not older: no chain (Chain refuses it too)
				}
				root = b
			}
			if root != nil && keptFull[root] || root == nil && indexOf(ms, m) > oldestKept {
				ids = append(ids, m.ID)
			}
		}
		need := manifest.Needed(sms, ids)
		for _, m := range sms {
			if need[m.ID] {
				kept[m] = true
			}
		}
	}
	for _, m := range ms {
		if kept[m] {
			keep = append(keep, m)
		} else {
			drop = append(drop, m)
		}
	}
	return keep, drop
}

func indexOf(ms []*manifest.Manifest, m *manifest.Manifest) int {
	for i, x := range ms {
		if x == m {
			return i
		}
	}
	return -1
}

// pruner deletes catalog entries, then the blobs no manifest references.
type pruner struct {
	w       io.Writer
	s       *ckptStore
	dryRun  bool
	dropped map[string]bool // vehicle/store/id of the entries deleted (or that would be)
}

func (p *pruner) verb() string {
	if p.dryRun {
		return "would delete"
	}
	return "delete"
}

// catalog deletes the catalog entries of vehicle's checkpoints that
// retention does not keep.
func (p *pruner) catalog(vehicle string, keepFull int) error {
	ms, err := p.s.cat.Manifests(vehicle)
	if err != nil {
		return err
	}
	keep, drop := prunePlan(ms, keepFull)
	p.dropped = map[string]bool{}
	for _, m := range drop {
		fmt.Fprintf(p.w, "%s checkpoint %s (%s, %s) of %s\n", p.verb(), m.ID, m.Kind, m.Created.UTC().Format(time.RFC3339), where(vehicle, m.StoreID))
		p.dropped[vehicle+"/"+m.StoreID+"/"+m.ID] = true
		if !p.dryRun {
			if err := p.s.cat.Delete(vehicle, m.StoreID, m.ID); err != nil {
				return err
			}
		}
	}
	fulls := 0
	for _, m := range keep {
		if m.Kind == manifest.Full {
			fulls++
		}
	}
	fmt.Fprintf(p.w, "prune: vehicle %s: %d checkpoints kept (%d fulls), %d deleted\n", vehicle, len(keep), fulls, len(drop))
	return nil
}

// blobs deletes the blobs that no kept manifest of any vehicle references
// and that were last put before cutoff, and the temporary files of Puts
// a crash cut short before cutoff. A catalog it cannot read stops it
// before it deletes anything: the references would be incomplete.
func (p *pruner) blobs(ctx context.Context, cutoff time.Time) error {
	refs := map[string]bool{}
	vs, err := p.s.cat.Vehicles()
	if err != nil {
		return err
	}
	for _, v := range vs {
		ms, err := p.s.cat.Manifests(v)
		if err != nil {
			return fmt.Errorf("no blob deleted: %w", err)
		}
		for _, m := range ms {
			if p.dropped[v+"/"+m.StoreID+"/"+m.ID] {
				continue // only a dry run still has it
			}
			for _, c := range m.Chunks {
				refs[c.SHA256] = true
			}
		}
	}
	var del []string
	var delBytes int64
	young := 0
	err = p.s.blobs.List(ctx, func(sum string, n int64, mod time.Time) error {
		switch {
		case refs[sum]:
		case mod.Before(cutoff):
			del = append(del, sum)
			delBytes += n
		default:
			young++
		}
		return nil
	})
	if err != nil {
		return err
	}
	temps := 0
	if !p.dryRun {
		for _, sum := range del {
			if err := p.s.blobs.Delete(ctx, sum); err != nil {
				return err
			}
		}
		if temps, err = p.s.blobs.RemoveTemp(ctx, cutoff); err != nil {
			return err
		}
	}
	fmt.Fprintf(p.w, "prune: blobs: %d referenced, %s %d unreferenced (%s), kept %d unreferenced younger than the grace period; %d temporary files removed\n",
		len(refs), p.verb(), len(del), size(delBytes), young, temps)
	return nil
}
