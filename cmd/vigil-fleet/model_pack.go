package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
)

// packFlags are model pack's flags.
type packFlags struct {
	dir, name, model, contractFrom, minVigil, out *string
	version                                       *uint64
	roles, providers                              listFlag
	tolAbs, tolRel                                *float64
	validFor                                      *time.Duration
}

func setupModelPack(g *globals, fset *flag.FlagSet) func(context.Context, []string) error {
	f := &packFlags{
		dir:          fset.String("dir", "", "the directory of the model's files; every regular file under it goes into the bundle (required)"),
		name:         fset.String("name", "", "the model's name, e.g. pilotnet: a-z, 0-9, '.', '_', '-' (required)"),
		version:      fset.Uint64("version", 0, "the model's version, an integer from 1, higher than every version of this name before (required)"),
		model:        fset.String("model", "", "the ONNX file to load, relative to --dir (default: the only .onnx file in --dir)"),
		contractFrom: fset.String("contract-from", "", "where the input/output contract comes from: a .json file ({\"inputs\": [{\"name\", \"type\", \"shape\"}], \"outputs\": [...]}) or an ONNX model whose declared inputs and outputs are read (default: the --model file)"),
		minVigil:     fset.String("min-vigil", "", "the oldest Vigil that may run it, a semantic version such as 0.1.0 (required)"),
		out:          fset.String("out", "", "the bundle file to write, a tar; must not exist (required)"),
		tolAbs:       fset.Float64("tolerance-abs", 0, "trial tolerance: the absolute difference allowed from the primary's outputs (with --tolerance-rel; neither: none in the manifest)"),
		tolRel:       fset.Float64("tolerance-rel", 0, "trial tolerance: the difference allowed relative to the primary's output"),
		validFor:     fset.Duration("valid-for", 30*24*time.Hour, "how long from now the bundle may be installed (expires)"),
	}
	fset.Var(&f.roles, "roles", "the roles it may fill, comma-separated: primary, shadow, degraded (default primary)")
	fset.Var(&f.providers, "providers", "the execution providers it needs, comma-separated, e.g. cuda,tensorrt (default: none beyond what every vehicle has)")
	return func(_ context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("model pack: unexpected arguments %q; the model's files go in --dir", args)
		}
		set := map[string]bool{}
		fset.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		m, err := f.manifest(set, time.Now().UTC().Truncate(time.Second))
		if err != nil {
			return fmt.Errorf("model pack: %w", err)
		}
		err = writeAtomic(*f.out, true, func(out *os.File) error { return bundle.Pack(out, m, os.DirFS(*f.dir)) })
		if err != nil {
			return fmt.Errorf("model pack: %s: %w", *f.out, err)
		}
		var size int64
		for _, fl := range m.Files {
			size += fl.Size
		}
		files := "files"
		if len(m.Files) == 1 {
			files = "file"
		}
		fmt.Fprintf(g.stdout, "packed %s v%d: %s (%d %s, %d bytes), unsigned\n", m.Name, m.Version, *f.out, len(m.Files), files, size)
		fmt.Fprintf(g.stdout, "sign it: vigil-fleet model sign --key <model-signing key> %s\n", *f.out)
		return nil
	}
}

// manifest builds the unsigned manifest from the flags and --dir's files.
func (f *packFlags) manifest(set map[string]bool, now time.Time) (*bundle.Manifest, error) {
	for _, req := range []struct{ flag, val string }{{"dir", *f.dir}, {"name", *f.name}, {"min-vigil", *f.minVigil}, {"out", *f.out}} {
		if req.val == "" {
			return nil, fmt.Errorf("--%s is required", req.flag)
		}
	}
	if *f.version == 0 {
		return nil, errors.New("--version is required: an integer from 1")
	}
	if *f.validFor <= 0 {
		return nil, fmt.Errorf("--valid-for %v: must be positive", *f.validFor)
	}
	if st, err := os.Stat(*f.dir); err != nil {
		return nil, fmt.Errorf("--dir: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("--dir %s is not a directory", *f.dir)
	}
	if _, err := os.Lstat(filepath.Join(*f.dir, bundle.ManifestName)); err == nil {
		return nil, fmt.Errorf("--dir %s holds a %s: it is a bundle already; give the directory of the model's files only", *f.dir, bundle.ManifestName)
	}
	files, err := bundle.HashFiles(os.DirFS(*f.dir))
	if err != nil {
		return nil, fmt.Errorf("--dir %s: %w", *f.dir, err)
	}
	model, err := pickModel(*f.model, *f.dir, files)
	if err != nil {
		return nil, err
	}
	from := *f.contractFrom
	if from == "" {
		from = filepath.Join(*f.dir, filepath.FromSlash(model))
	}
	contract, err := readContract(from)
	if err != nil {
		return nil, fmt.Errorf("--contract-from: %w", err)
	}
	roles := f.roles
	if len(roles) == 0 {
		roles = listFlag{string(bundle.RolePrimary)}
	}
	m := &bundle.Manifest{
		Format: bundle.FormatVersion, Name: *f.name, Version: *f.version,
		Model: model, Contract: contract, Files: files, MinVigil: *f.minVigil,
		Providers: f.providers, Created: now, Expires: now.Add(*f.validFor),
	}
	for _, r := range roles {
		m.Roles = append(m.Roles, bundle.Role(r))
	}
	if set["tolerance-abs"] || set["tolerance-rel"] {
		m.Tolerance = &bundle.Tolerance{Abs: *f.tolAbs, Rel: *f.tolRel}
	}
	if err := m.Validate(); err != nil {
		return nil, flagNamed(err)
	}
	return m, nil
}

// pickModel checks --model against the files, or finds the only .onnx
// file among them.
func pickModel(model, dir string, files []bundle.File) (string, error) {
	var onnx []string
	for _, f := range files {
		if model != "" && f.Path == filepath.ToSlash(model) {
			return f.Path, nil
		}
		if strings.EqualFold(filepath.Ext(f.Path), ".onnx") {
			onnx = append(onnx, f.Path)
		}
	}
	switch {
	case model != "":
		return "", fmt.Errorf("--model %s is not a file under --dir %s", model, dir)
	case len(onnx) == 1:
		return onnx[0], nil
	case len(onnx) == 0:
		return "", fmt.Errorf("--dir %s holds no .onnx file; name the model with --model", dir)
	}
	return "", fmt.Errorf("--dir %s holds %d .onnx files (%s); name the one to load with --model", dir, len(onnx), strings.Join(onnx, ", "))
}

// flagNamed adds the flag that sets a manifest field to Validate's error.
func flagNamed(err error) error {
	for field, fl := range map[string]string{
		"field name:": "--name", "field version:": "--version", "field roles:": "--roles",
		"field min_vigil:": "--min-vigil", "field providers:": "--providers", "field tolerance": "--tolerance-abs/--tolerance-rel",
	} {
		if strings.Contains(err.Error(), field) {
			return fmt.Errorf("%s: %w", fl, err)
		}
	}
	return err
}
