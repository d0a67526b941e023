package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
)

func setupModelSign(g *globals, fset *flag.FlagSet) func(context.Context, []string) error {
	key := fset.String("key", "", "the model-signing private key (vigil-fleet model keygen), not a fleet command key (required)")
	out := fset.String("out", "", "write the signed bundle here, as a tar, and leave the original as it is (default: sign in place)")
	validFor := fset.Duration("valid-for", 0, "also renew the validity: created becomes now and expires now plus this (default: keep both)")
	return func(_ context.Context, args []string) error {
		path, err := oneBundle("sign", args)
		if err != nil {
			return err
		}
		if *key == "" {
			return errors.New("model sign: --key is required: the model-signing private key (vigil-fleet model keygen)")
		}
		if *validFor < 0 {
			return fmt.Errorf("model sign: --valid-for %v: must be positive", *validFor)
		}
		priv, err := bundle.ReadPrivateKey(*key)
		if err != nil {
			return fmt.Errorf("model sign: --key: %w", err)
		}
		b, err := bundle.Open(path)
		if err != nil {
			return fmt.Errorf("model sign: %w", err)
		}
		defer b.Close()
		// Never sign files that are not what the manifest says.
		if err := bundle.VerifyFiles(b.Manifest, b.Files); err != nil {
			return fmt.Errorf("model sign: %s: %w", path, err)
		}
		m := *b.Manifest
		if *validFor > 0 {
			now := time.Now().UTC().Truncate(time.Second)
			m.Created, m.Expires = now, now.Add(*validFor)
		}
		if err := bundle.Sign(&m, priv); err != nil {
			return fmt.Errorf("model sign: %w", err)
		}
		dest, err := writeSigned(b, &m, *out)
		if err != nil {
			return fmt.Errorf("model sign: %w", err)
		}
		hash, err := m.Hash()
		if err != nil {
			return fmt.Errorf("model sign: %w", err)
		}
		fmt.Fprintf(g.stdout, "signed %s v%d with model-signing key %s: %s\n", m.Name, m.Version, m.Signature.KeyID, dest)
		fmt.Fprintf(g.stdout, "expires %s\n", m.Expires.Format(time.RFC3339))
		fmt.Fprintf(g.stdout, "hash %s\n", hash)
		return nil
	}
}

// writeSigned writes b with the signed manifest m: to out as a tar when
// out is set, else in place (a directory's bundle.json, or the whole tar,
// replaced by an atomic rename). It returns where it wrote.
func writeSigned(b *bundle.Bundle, m *bundle.Manifest, out string) (string, error) {
	pack := func(f *os.File) error { return bundle.Pack(f, m, b.Files) }
	switch {
	case out != "":
		return out, writeAtomic(out, true, pack)
	case b.Packed:
		return b.Path, writeAtomic(b.Path, false, pack)
	}
	data, err := bundle.Encode(m)
	if err != nil {
		return "", err
	}
	dest := filepath.Join(b.Path, bundle.ManifestName)
	return dest, writeAtomic(dest, false, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}
