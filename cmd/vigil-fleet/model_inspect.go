package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
)

func setupModelInspect(g *globals, fset *flag.FlagSet) func(context.Context, []string) error {
	asJSON := fset.Bool("json", false, `print {"path", "packed", "hash", "manifest"} as JSON, the manifest as bundle.json holds it`)
	return func(_ context.Context, args []string) error {
		path, err := oneBundle("inspect", args)
		if err != nil {
			return err
		}
		b, err := bundle.Open(path)
		if err != nil {
			return fmt.Errorf("model inspect: %w", err)
		}
		defer b.Close()
		hash, err := b.Manifest.Hash()
		if err != nil {
			return fmt.Errorf("model inspect: %w", err)
		}
		if *asJSON {
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				Path     string           `json:"path"`
				Packed   bool             `json:"packed"`
				Hash     string           `json:"hash"`
				Manifest *bundle.Manifest `json:"manifest"`
			}{b.Path, b.Packed, hash, b.Manifest})
		}
		printManifest(g.stdout, b, hash)
		return nil
	}
}

// printManifest writes the manifest for a reader; it checks nothing
// (model verify does).
func printManifest(w io.Writer, b *bundle.Bundle, hash string) {
	m := b.Manifest
	form := "directory"
	if b.Packed {
		form = "tar"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("bundle:", fmt.Sprintf("%s (%s, format %d)", b.Path, form, m.Format))
	row("name:", m.Name)
	row("version:", fmt.Sprint(m.Version))
	roles := make([]string, len(m.Roles))
	for i, r := range m.Roles {
		roles[i] = string(r)
	}
	row("roles:", strings.Join(roles, ", "))
	row("model:", m.Model)
	for _, t := range m.Contract.Inputs {
		row("input:", tensorString(t))
	}
	for _, t := range m.Contract.Outputs {
		row("output:", tensorString(t))
	}
	row("min vigil:", m.MinVigil)
	providers := "none required"
	if len(m.Providers) > 0 {
		providers = strings.Join(m.Providers, ", ")
	}
	row("providers:", providers)
	tol := "none (the vehicle's configuration decides)"
	if t := m.Tolerance; t != nil {
		tol = fmt.Sprintf("abs %g, rel %g", t.Abs, t.Rel)
	}
	row("tolerance:", tol)
	row("created:", m.Created.Format(time.RFC3339))
	row("expires:", m.Expires.Format(time.RFC3339))
	sig := "none: unsigned (vigil-fleet model sign)"
	if m.Signature != nil {
		sig = "ed25519, model-signing key " + m.Signature.KeyID
	}
	row("signature:", sig)
	row("hash:", hash)
	tw.Flush()
	fmt.Fprintf(w, "files (%d):\n", len(m.Files))
	width := 1
	for _, f := range m.Files {
		width = max(width, len(fmt.Sprint(f.Size)))
	}
	for _, f := range m.Files {
		fmt.Fprintf(w, "  %*d  %s  %s\n", width, f.Size, f.SHA256, f.Path)
	}
}

func tensorString(t bundle.Tensor) string {
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = fmt.Sprint(d)
		if d < 0 {
			dims[i] = "?"
		}
	}
	return fmt.Sprintf("%s %s [%s]", t.Name, t.Type, strings.Join(dims, " "))
}
