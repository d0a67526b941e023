// Command vigil-package builds Vigil's Debian packages with nfpm: vigil
// (vigild, vigilctl, the architecture's ONNX Runtime library checked against
// its pinned SHA-256, the configuration in /etc/vigil, the systemd unit),
// vigil-fleet, and vigil-models (the demo models). `make package` runs it for
// amd64 and arm64; docs/packaging.md describes what the packages install.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigil-av/vigil/cmd/internal/cli"
	"github.com/vigil-av/vigil/internal/version"
)

const usage = `usage: vigil-package build --arch ARCH --bin DIR [flags]
       vigil-package version [--semver | --commit] [--repo DIR]
       vigil-package --version

build writes the .deb packages of one architecture into --out: vigil and
vigil-fleet, and vigil-models (architecture all) when --models is given.
The version comes from git (git describe --tags --always --dirty, made a
Debian version: 0.0~git<date>.<hash> while no tag is reachable) unless
--version gives it.

version prints that Debian version; with --semver, the semantic version the
binaries carry (internal/version.Version: the tag's, or 0.1.0-dev with the
commit as build metadata); with --commit, the commit's hash (and -dirty). The
Makefile passes the last two to the linker.

flags of build:
`

func main() { cli.Main("vigil-package", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("want a subcommand: build or version")
	}
	switch args[0] {
	case "build":
		return runBuild(ctx, args[1:], stdout, stderr)
	case "version":
		return runVersion(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "--version", "-version":
		// The tool's own version, as every command prints it; the
		// packages' version is the version subcommand's.
		fmt.Fprintln(stdout, version.String("vigil-package", version.ONNXRuntime))
		return nil
	}
	return fmt.Errorf("unknown subcommand %q: want build or version (see --help)", args[0])
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil-package version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commit := fs.Bool("commit", false, "print the commit's hash (with -dirty) instead")
	semver := fs.Bool("semver", false, "print the semantic version the binaries carry instead")
	repo := fs.String("repo", ".", "the git checkout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	g, err := readGit(ctx, *repo)
	if err != nil {
		return err
	}
	if *commit {
		c := g.Full
		if strings.HasSuffix(g.Describe, "-dirty") {
			c += "-dirty"
		}
		fmt.Fprintln(stdout, c)
		return nil
	}
	conv := debianVersion
	if *semver {
		conv = semVersion
	}
	v, err := conv(g)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, v)
	return nil
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("vigil-package build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Arch, "arch", "", "Debian architecture: amd64 or arm64")
	fs.StringVar(&o.BinDir, "bin", "", "directory of vigild, vigilctl and vigil-fleet built for --arch")
	fs.StringVar(&o.ORTDir, "ort", "third_party/onnxruntime", "ONNX Runtime directory: SHA256SUMS and "+ortVersion+"/linux-<arch>/")
	fs.StringVar(&o.ModelsDir, "models", "", "directory of the demo models; empty: no vigil-models package")
	fs.StringVar(&o.Doc, "doc", "docs/packaging.md", "documentation shipped in /usr/share/doc/vigil")
	fs.StringVar(&o.OutDir, "out", "build/packages", "output directory")
	fs.StringVar(&o.Version, "version", "", "Debian version (default: from git)")
	fs.StringVar(&o.Maintainer, "maintainer", defaultMain, "the Maintainer field")
	fs.StringVar(&o.Config, "config", "", "file shipped as "+configPath+" (default: the built-in cmd/vigil-package/files/vigild.yaml)")
	fs.StringVar(&o.Compression, "compression", "xz", "compression of the packages' files: xz, gzip, zstd or none")
	repo := fs.String("repo", ".", "the git checkout the version and commit come from")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if o.Arch == "" || o.BinDir == "" {
		return errors.New("--arch and --bin are required (see --help)")
	}
	g, err := readGit(ctx, *repo)
	if err != nil {
		return err
	}
	o.Commit, o.Date = g.Commit, g.Date
	if o.Version == "" {
		if o.Version, err = debianVersion(g); err != nil {
			return err
		}
	}
	start := time.Now()
	debs, err := buildPackages(o)
	if err != nil {
		return err
	}
	for _, d := range debs {
		fmt.Fprintln(stdout, d)
	}
	fmt.Fprintf(stderr, "vigil-package: %d packages for %s, version %s, in %v\n", len(debs), o.Arch, o.Version, time.Since(start).Round(time.Millisecond))
	return nil
}
