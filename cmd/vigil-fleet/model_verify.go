package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
)

// verifyFlags are model verify's flags: the vehicle the bundle is held to.
type verifyFlags struct {
	trusted, floors, contracts, providers listFlag
	vigil, at                             *string
}

func setupModelVerify(g *globals, fset *flag.FlagSet) func(context.Context, []string) error {
	f := &verifyFlags{}
	fset.Var(&f.trusted, "trusted", "the trusted model-signing public keys (.pub), comma-separated or repeated (required)")
	fset.Var(&f.floors, "floor", "the anti-rollback floor of a name, name=version: the version must be above it; comma-separated or repeated (default: 0 for every name)")
	fset.Var(&f.providers, "providers", "the execution providers the vehicle has, comma-separated (default cpu)")
	fset.Var(&f.contracts, "contract", "the contract the vehicle runs, [role=]file with file a .json contract or an ONNX model; without role= for every role; repeated for several (default: not checked)")
	f.vigil = fset.String("vigil-version", "", "the vehicle's Vigil version, checked against min_vigil (default: not checked)")
	f.at = fset.String("at", "", "check the validity window at this RFC 3339 time instead of now, e.g. when a rollout will start")
	return func(_ context.Context, args []string) error {
		path, err := oneBundle("verify", args)
		if err != nil {
			return err
		}
		b, err := bundle.Open(path)
		if err != nil {
			return fmt.Errorf("model verify: %w", err)
		}
		defer b.Close()
		p, now, notes, err := f.policy(b.Manifest)
		if err != nil {
			return fmt.Errorf("model verify: %w", err)
		}
		if err := b.Verify(p, now); err != nil {
			return fmt.Errorf("model verify: refused: %w", err)
		}
		hash, err := b.Manifest.Hash()
		if err != nil {
			return fmt.Errorf("model verify: %w", err)
		}
		m := b.Manifest
		fmt.Fprintf(g.stdout, "ok: %s v%d, signed by model-signing key %s, valid until %s\n", m.Name, m.Version, m.Signature.KeyID, m.Expires.Format(time.RFC3339))
		fmt.Fprintf(g.stdout, "hash %s\n", hash)
		for _, n := range notes {
			fmt.Fprintf(g.stdout, "not checked: %s\n", n)
		}
		return nil
	}
}

// policy builds the policy from the flags. Checks the flags leave out are
// listed in notes: for vigil-version and contract the tool cannot know
// the vehicle, so it says what it did not check.
func (f *verifyFlags) policy(m *bundle.Manifest) (p bundle.Policy, now time.Time, notes []string, err error) {
	if len(f.trusted) == 0 {
		return p, now, nil, errors.New("--trusted is required: the model-signing public keys (.pub) the vehicles trust")
	}
	for _, path := range f.trusted {
		k, err := bundle.ReadPublicKey(path)
		if err != nil {
			return p, now, nil, fmt.Errorf("--trusted: %w", err)
		}
		p.Trusted = append(p.Trusted, k)
	}
	p.Providers = f.providers
	if len(p.Providers) == 0 {
		p.Providers = []string{"cpu"}
	}
	p.VigilVersion = *f.vigil
	if p.VigilVersion == "" {
		p.VigilVersion = m.MinVigil // passes: the check is skipped
		notes = append(notes, fmt.Sprintf("the Vigil version (min_vigil %s; give --vigil-version)", m.MinVigil))
	} else if _, err := bundle.ParseSemver(p.VigilVersion); err != nil {
		return p, now, nil, fmt.Errorf("--vigil-version: %v", err)
	}
	if p.Floors, err = parseFloors(f.floors); err != nil {
		return p, now, nil, err
	}
	if p.Contracts, err = parseContracts(f.contracts); err != nil {
		return p, now, nil, err
	}
	if p.Contracts == nil {
		notes = append(notes, "the contract (give --contract)")
	}
	now = time.Now()
	if *f.at != "" {
		if now, err = time.Parse(time.RFC3339, *f.at); err != nil {
			return p, now, nil, fmt.Errorf("--at: %v", err)
		}
	}
	return p, now, notes, nil
}

func parseFloors(vals []string) (map[string]uint64, error) {
	floors := map[string]uint64{}
	for _, v := range vals {
		name, ver, ok := strings.Cut(v, "=")
		n, err := strconv.ParseUint(ver, 10, 64)
		if !ok || name == "" || err != nil {
			return nil, fmt.Errorf("--floor %q: want name=version, e.g. pilotnet=3", v)
		}
		floors[name] = n
	}
	return floors, nil
}

func parseContracts(vals []string) (map[bundle.Role]bundle.Contract, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	contracts := map[bundle.Role]bundle.Contract{}
	for _, v := range vals {
		roles, path := bundle.Roles, v
		if role, file, ok := strings.Cut(v, "="); ok {
			if !isRole(role) {
				return nil, fmt.Errorf("--contract %q: unknown role %q (primary, shadow or degraded)", v, role)
			}
			roles, path = []bundle.Role{bundle.Role(role)}, file
		}
		c, err := readContract(path)
		if err != nil {
			return nil, fmt.Errorf("--contract: %w", err)
		}
		for _, r := range roles {
			contracts[r] = c
		}
	}
	return contracts, nil
}

func isRole(s string) bool {
	for _, r := range bundle.Roles {
		if string(r) == s {
			return true
		}
	}
	return false
}
