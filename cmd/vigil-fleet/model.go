package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-av/vigil/models/bundle"
)

// The model subcommands (keygen, pack, sign, inspect, verify) make and
// check model bundles with package models/bundle, which the vehicle uses
// to verify them too; docs/models.md describes the format.

func setupModelKeygen(g *globals, fset *flag.FlagSet) func(context.Context, []string) error {
	out := fset.String("out", "", "where to write: a prefix (writes <prefix>.key and <prefix>.pub) or an existing directory (writes model-signing.key and model-signing.pub in it); required")
	return func(_ context.Context, args []string) error {
		return writeKeyPair(g, keyPair{cmd: "model keygen", out: *out, dirName: "model-signing", example: "./models-2026",
			privUse: "give it to `vigil-fleet model sign --key`", pubUse: "the vehicles' trusted model-signing key; `vigil-fleet model verify --trusted`",
			make: func() ([]byte, []byte, string, error) {
				pub, priv, id, err := bundle.GenerateKey(nil)
				if err != nil {
					return nil, nil, "", err
				}
				return bundle.MarshalPublicKey(pub), bundle.MarshalPrivateKey(priv), id, nil
			}}, args)
	}
}

// oneBundle returns the single positional argument of cmd: a bundle.
func oneBundle(cmd string, args []string) (string, error) {
	switch len(args) {
	case 1:
		return args[0], nil
	case 0:
		return "", fmt.Errorf("model %s: give the bundle: a tar (model pack --out) or a directory holding %s", cmd, bundle.ManifestName)
	}
	return "", fmt.Errorf("model %s: one bundle at a time; got %d arguments %q", cmd, len(args), args)
}

// writeAtomic writes path through a temporary file in its directory,
// synced and renamed into place, and syncs the directory: a reader sees
// the old file or the new, never part of one. fill writes the contents.
// With exclusive, an existing path is refused.
func writeAtomic(path string, exclusive bool, fill func(f *os.File) error) (err error) {
	if exclusive {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s exists; refusing to overwrite it (remove it or choose another --out)", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// listFlag is a flag that may be repeated, each value a comma-separated
// list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// readContract reads a contract from a JSON file (.json) or from the
// inputs and outputs an ONNX model declares (any other file).
func readContract(path string) (bundle.Contract, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return bundle.Contract{}, err
	}
	var c bundle.Contract
	if strings.EqualFold(filepath.Ext(path), ".json") {
		c, err = bundle.ParseContract(data)
	} else {
		c, err = bundle.ContractFromONNX(data)
	}
	if err != nil {
		return bundle.Contract{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
