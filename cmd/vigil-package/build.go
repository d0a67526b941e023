package main

import (
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// assets are the files the packages ship as they are: the unit, the
// configuration, the maintainer scripts and the copyright texts.
//
//go:embed files
var assets embed.FS

// Where the vigil package installs what the shipped configuration and unit
// name; unit_test.go checks that the three agree.
const (
	unitPath    = "/lib/systemd/system/vigild.service"
	configPath  = "/etc/vigil/vigild.yaml"
	ortPath     = "/usr/lib/vigil/libonnxruntime.so.1"
	modelsDir   = "/usr/share/vigil/models"
	homepage    = "https://github.com/vigil-av/vigil"
	defaultMain = "Vigil maintainers <maintainers@vigil-av.invalid>"
)

// demoModels are the models the shipped configuration names.
var demoModels = []string{"primary.onnx", "shadow.onnx", "degraded.onnx"}

// options is one run: one architecture's packages.
type options struct {
	Arch        string    // amd64 or arm64
	BinDir      string    // vigild, vigilctl and vigil-fleet built for Arch
	ORTDir      string    // third_party/onnxruntime (SHA256SUMS and the libraries)
	ModelsDir   string    // the demo models; empty: no vigil-models package
	Doc         string    // docs/packaging.md, shipped in /usr/share/doc/vigil
	OutDir      string    // where the .deb files go
	Version     string    // the Debian version
	Commit      string    // the git commit, for the changelog
	Date        time.Time // the files' mtime and the changelog's date
	Maintainer  string
	Config      string // shipped as /etc/vigil/vigild.yaml; empty: files/vigild.yaml
	Compression string // of the data archive: xz, gzip, zstd or none
}

// spec is one package.
type spec struct {
	name, arch, section  string
	summary, description string
	contents             files.Contents
	elfs                 []string // read for the dependencies
	depends, suggests    []string
	enhances             string
	scripts              nfpm.Scripts
	copyrightExtra       string // appended to files/copyright
}

// buildPackages writes the packages of o.Arch (and vigil-models, for all
// architectures, when o.ModelsDir is set) into o.OutDir and returns their
// paths.
func buildPackages(o options) ([]string, error) {
	if _, ok := machines[o.Arch]; !ok {
		return nil, fmt.Errorf("--arch %q: want amd64 or arm64", o.Arch)
	}
	if err := checkDebianVersion(o.Version); err != nil {
		return nil, fmt.Errorf("--version: %w", err)
	}
	switch o.Compression {
	case "xz", "gzip", "zstd", "none":
	default:
		return nil, fmt.Errorf("--compression %q: want xz, gzip, zstd or none", o.Compression)
	}
	lib, err := ortLibrary(o.ORTDir, o.Arch)
	if err != nil {
		return nil, err
	}
	bin := func(name string) (string, error) {
		p := filepath.Join(o.BinDir, name)
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("--bin %s: %w (build the %s commands first)", o.BinDir, err, o.Arch)
		}
		if st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("--bin %s: %s is not executable", o.BinDir, name)
		}
		return p, nil
	}
	var bins = map[string]string{}
	for _, name := range []string{"vigild", "vigilctl", "vigil-fleet"} {
		if bins[name], err = bin(name); err != nil {
			return nil, err
		}
	}
	stage, err := os.MkdirTemp("", "vigil-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	if err := writeAssets(stage); err != nil {
		return nil, err
	}
	if o.Config != "" {
		b, err := os.ReadFile(o.Config)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		if err := os.WriteFile(filepath.Join(stage, "files", "vigild.yaml"), b, 0o644); err != nil {
			return nil, err
		}
	}
	// The document is copied: nfpm reads the files as it writes, and one
	// that changes meanwhile breaks the archive.
	doc, err := os.ReadFile(o.Doc)
	if err != nil {
		return nil, fmt.Errorf("--doc: %w", err)
	}
	o.Doc = filepath.Join(stage, "packaging.md")
	if err := os.WriteFile(o.Doc, doc, 0o644); err != nil {
		return nil, err
	}
	specs := []spec{vigilSpec(o, stage, bins, lib), fleetSpec(bins)}
	if o.ModelsDir != "" {
		ms, err := modelsSpec(o.ModelsDir)
		if err != nil {
			return nil, err
		}
		specs = append(specs, ms)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, s := range specs {
		p, err := writePackage(o, stage, s)
		if err != nil {
			return nil, fmt.Errorf("package %s (%s): %w", s.name, s.arch, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func vigilSpec(o options, stage string, bins map[string]string, lib string) spec {
	asset := func(name string) string { return filepath.Join(stage, "files", name) }
	return spec{
		name: "vigil", arch: o.Arch, section: "misc",
		summary: "inference watchdog for autonomous vehicles (vigild, vigilctl)",
		description: `vigild keeps a vehicle's neural-network inference answering by its
deadline: it runs a primary and a shadow ONNX model on the GPU and a
degraded model on the CPU, and fails over from one to the next within each
request's deadline. It buffers telemetry on the vehicle and syncs it to the
fleet over MQTT; supervisors drive it with vigilctl over a Unix socket.

This package ships the CPU build of ONNX Runtime ` + ortVersion + ` for vigild alone,
the configuration in /etc/vigil and a hardened systemd unit, which is
neither enabled nor started on installation.`,
		contents: files.Contents{
			file(bins["vigild"], "/usr/bin/vigild", 0o755),
			file(bins["vigilctl"], "/usr/bin/vigilctl", 0o755),
			file(lib, ortPath, 0o644),
			file(asset("vigild.service"), unitPath, 0o644),
			{Source: asset("vigild.yaml"), Destination: configPath, Type: files.TypeConfig,
				FileInfo: &files.ContentFileInfo{Mode: 0o644}},
			file(o.Doc, "/usr/share/doc/vigil/packaging.md", 0o644),
		},
		elfs:           []string{bins["vigild"], bins["vigilctl"], lib},
		depends:        []string{"adduser"},
		suggests:       []string{"vigil-models"},
		copyrightExtra: "copyright-onnxruntime",
		scripts: nfpm.Scripts{
			PostInstall: asset("postinst"),
			PreRemove:   asset("prerm"),
			PostRemove:  asset("postrm"),
		},
	}
}

func fleetSpec(bins map[string]string) spec {
	return spec{
		name: "vigil-fleet", arch: "", section: "net",
		summary: "fleet-side tools for Vigil vehicles (vigil-fleet)",
		description: `vigil-fleet is the fleet operator's side of Vigil: it generates keys,
signs commands and model bundles for the vehicles, ingests their telemetry
from the MQTT broker into a sink, lists the vehicles and their state, stores
and verifies their checkpoints, and runs model rollouts.`,
		contents: files.Contents{file(bins["vigil-fleet"], "/usr/bin/vigil-fleet", 0o755)},
		elfs:     []string{bins["vigil-fleet"]},
	}
}

func modelsSpec(dir string) (spec, error) {
	s := spec{
		name: "vigil-models", arch: "all", section: "misc",
		summary: "demo models for Vigil",
		description: `The three ONNX models of Vigil's demonstration (primary, shadow and
degraded), generated deterministically, in ` + modelsDir + `, where the
shipped /etc/vigil/vigild.yaml looks for them. Vehicles in service get their
models from a fleet rollout instead.`,
		enhances: "vigil",
	}
	for _, m := range demoModels {
		p := filepath.Join(dir, m)
		if _, err := os.Stat(p); err != nil {
			return s, fmt.Errorf("--models: %w (run `make models`)", err)
		}
		s.contents = append(s.contents, file(p, modelsDir+"/"+m, 0o644))
	}
	return s, nil
}

func file(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, Type: files.TypeFile,
		FileInfo: &files.ContentFileInfo{Mode: mode}}
}

// writePackage builds one .deb with nfpm's deb packager.
func writePackage(o options, stage string, s spec) (string, error) {
	arch := s.arch
	if arch == "" {
		arch = o.Arch
	}
	deps := append([]string(nil), s.depends...)
	if len(s.elfs) > 0 {
		lib, err := elfDepends(o.Arch, s.elfs)
		if err != nil {
			return "", err
		}
		deps = append(deps, lib...)
	}
	doc := filepath.Join(stage, s.name)
	if err := os.MkdirAll(doc, 0o755); err != nil {
		return "", err
	}
	copyright, err := assets.ReadFile("files/copyright")
	if err != nil {
		return "", err
	}
	if s.copyrightExtra != "" {
		extra, err := assets.ReadFile("files/" + s.copyrightExtra)
		if err != nil {
			return "", err
		}
		copyright = append(copyright, extra...)
	}
	if err := os.WriteFile(filepath.Join(doc, "copyright"), copyright, 0o644); err != nil {
		return "", err
	}
	log, err := changelog(o, s.name)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(doc, "changelog.gz"), log, 0o644); err != nil {
		return "", err
	}
	contents := append(files.Contents{}, s.contents...)
	contents = append(contents,
		file(filepath.Join(doc, "copyright"), "/usr/share/doc/"+s.name+"/copyright", 0o644),
		file(filepath.Join(doc, "changelog.gz"), "/usr/share/doc/"+s.name+"/changelog.gz", 0o644))
	info := &nfpm.Info{
		Name: s.name, Arch: arch, Platform: "linux",
		Version: o.Version, VersionSchema: "none",
		Section: s.section, Priority: "optional",
		Maintainer:  o.Maintainer,
		Description: s.summary + "\n" + s.description,
		Homepage:    homepage,
		License:     "proprietary",
		MTime:       o.Date,
		Overridables: nfpm.Overridables{
			Depends:  deps,
			Suggests: s.suggests,
			Contents: contents,
			Scripts:  s.scripts,
			Deb:      nfpm.Deb{Compression: o.Compression},
		},
	}
	if s.enhances != "" {
		info.Deb.Fields = map[string]string{"Enhances": s.enhances}
	}
	info = nfpm.WithDefaults(info)
	name := filepath.Join(o.OutDir, deb.Default.ConventionalFileName(info))
	var buf bytes.Buffer
	if err := deb.Default.Package(info, &buf); err != nil {
		return "", err
	}
	if err := os.WriteFile(name+".tmp", buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	return name, os.Rename(name+".tmp", name)
}

// changelog is a Debian changelog of one entry for this build, compressed
// the way dpkg expects (no name, no time stamp in the gzip header).
func changelog(o options, pkg string) ([]byte, error) {
	text := fmt.Sprintf("%s (%s) unstable; urgency=medium\n\n  * Built from git commit %s.\n\n -- %s  %s\n",
		pkg, o.Version, o.Commit, o.Maintainer, o.Date.UTC().Format(time.RFC1123Z))
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write([]byte(text)); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeAssets copies the embedded files into dir/files, the scripts
// executable.
func writeAssets(dir string) error {
	return fs.WalkDir(assets, "files", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if err == nil {
				err = os.MkdirAll(filepath.Join(dir, p), 0o755)
			}
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if bytes.HasPrefix(b, []byte("#!")) {
			mode = 0o755
		}
		return os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), b, mode)
	})
}
