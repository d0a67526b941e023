package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testOptions packages stand-in binaries with the real ONNX Runtime library
// of this machine's architecture and small model files.
func testOptions(t *testing.T) options {
	t.Helper()
	arch := hostArch(t)
	models := t.TempDir()
	for _, m := range demoModels {
		if err := os.WriteFile(filepath.Join(models, m), []byte("model "+m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc := filepath.Join(t.TempDir(), "packaging.md")
	if err := os.WriteFile(doc, []byte("# Packaging\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return options{
		Arch: arch, BinDir: standInBins(t), ORTDir: repoORT(t, arch),
		ModelsDir: models, Doc: doc, OutDir: t.TempDir(),
		Version: "1.2.3", Commit: "9083a33", Date: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
		Maintainer: defaultMain, Compression: "gzip",
	}
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(needTool(t, "dpkg-deb"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBuildPackages(t *testing.T) {
	o := testOptions(t)
	needTool(t, "dpkg-deb")
	debs, err := buildPackages(o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"vigil_1.2.3_" + o.Arch + ".deb", "vigil-fleet_1.2.3_" + o.Arch + ".deb", "vigil-models_1.2.3_all.deb"}
	if len(debs) != len(want) {
		t.Fatalf("built %v, want %v", debs, want)
	}
	for i, d := range debs {
		if filepath.Base(d) != want[i] {
			t.Errorf("package %d is %s, want %s", i, filepath.Base(d), want[i])
		}
	}
	vigil := debs[0]
	fields := map[string]string{}
	for _, f := range []string{"Package", "Version", "Architecture", "Depends", "Suggests", "Section", "Priority", "Maintainer"} {
		fields[f] = strings.TrimSpace(dpkgDeb(t, "-f", vigil, f))
	}
	if fields["Package"] != "vigil" || fields["Version"] != "1.2.3" || fields["Architecture"] != o.Arch ||
		fields["Priority"] != "optional" || fields["Section"] != "misc" || fields["Suggests"] != "vigil-models" {
		t.Errorf("control fields: %v", fields)
	}
	for _, dep := range []string{"adduser", "libc6 (>= 2.", "libstdc++6", "libgcc-s1"} {
		if !strings.Contains(fields["Depends"], dep) {
			t.Errorf("Depends %q lacks %s", fields["Depends"], dep)
		}
	}
	contents := dpkgDeb(t, "-c", vigil)
	for _, line := range []string{
		"-rwxr-xr-x root/root .* ./usr/bin/vigild",
		"-rwxr-xr-x root/root .* ./usr/bin/vigilctl",
		"-rw-r--r-- root/root .* ./usr/lib/vigil/libonnxruntime.so.1",
		"-rw-r--r-- root/root .* ./lib/systemd/system/vigild.service",
		"-rw-r--r-- root/root .* ./etc/vigil/vigild.yaml",
		"-rw-r--r-- root/root .* ./usr/share/doc/vigil/copyright",
		"-rw-r--r-- root/root .* ./usr/share/doc/vigil/changelog.gz",
	} {
		if !containsLine(contents, line) {
			t.Errorf("vigil's files lack %q:\n%s", line, contents)
		}
	}
	ctrl := t.TempDir()
	dpkgDeb(t, "-e", vigil, ctrl)
	conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil || strings.TrimSpace(string(conffiles)) != configPath {
		t.Errorf("conffiles = %q, %v; want %s", conffiles, err, configPath)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if !isExecutable(filepath.Join(ctrl, s)) {
			t.Errorf("%s missing or not executable", s)
		}
	}
	// The library in the package is the pinned one, byte for byte.
	root := t.TempDir()
	dpkgDeb(t, "-x", vigil, root)
	lib, err := ortLibrary(o.ORTDir, o.Arch)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := sha256File(filepath.Join(root, ortPath))
	pinned, _ := sha256File(lib)
	if got != pinned {
		t.Errorf("packaged library sha256 %s, pinned %s", got, pinned)
	}
	if fleet := dpkgDeb(t, "-c", debs[1]); !strings.Contains(fleet, "./usr/bin/vigil-fleet") || strings.Contains(fleet, "libonnxruntime") {
		t.Errorf("vigil-fleet's files:\n%s", fleet)
	}
	models := dpkgDeb(t, "-c", debs[2])
	for _, m := range demoModels {
		if !strings.Contains(models, "."+modelsDir+"/"+m) {
			t.Errorf("vigil-models lacks %s:\n%s", m, models)
		}
	}
}

func containsLine(listing, pattern string) bool {
	parts := strings.Split(pattern, " .* ")
	for _, l := range strings.Split(listing, "\n") {
		if strings.HasPrefix(l, parts[0]) && strings.HasSuffix(l, parts[1]) {
			return true
		}
	}
	return false
}

// TestRefusesTamperedLibrary: a library that differs from its pin by one
// byte is not packaged, and the error names the file and both checksums.
func TestRefusesTamperedLibrary(t *testing.T) {
	arch := hostArch(t)
	dir := fakeORT(t, arch, "/bin/true")
	lib := filepath.Join(dir, ortVersion, "linux-"+arch, "libonnxruntime.so.1")
	b, _ := os.ReadFile(lib)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(lib, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ortLibrary(dir, arch)
	if err == nil || !strings.Contains(err.Error(), "refusing to package it") || !strings.Contains(err.Error(), lib) {
		t.Fatalf("tampered library: %v", err)
	}
	o := testOptionsWithORT(t, dir)
	if _, err := buildPackages(o); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("buildPackages with a tampered library: %v", err)
	}
	if left, _ := os.ReadDir(o.OutDir); len(left) != 0 {
		t.Errorf("a refused build left %v", left)
	}
}

func testOptionsWithORT(t *testing.T, ort string) options {
	t.Helper()
	arch := hostArch(t)
	return options{Arch: arch, BinDir: standInBins(t), ORTDir: ort, Doc: "/dev/null",
		OutDir: t.TempDir(), Version: "1.0", Maintainer: defaultMain, Compression: "gzip"}
}

func TestRefusesMissingPinAndLibrary(t *testing.T) {
	arch := hostArch(t)
	dir := fakeORT(t, arch, "/bin/true")
	if _, err := ortLibrary(dir, "arm64x"); err == nil || !strings.Contains(err.Error(), "pins no checksum for linux-arm64x/libonnxruntime.so.1") {
		t.Errorf("no pin: %v", err)
	}
	os.Remove(filepath.Join(dir, ortVersion, "linux-"+arch, "libonnxruntime.so.1"))
	if _, err := ortLibrary(dir, arch); err == nil || !strings.Contains(err.Error(), "make ort") {
		t.Errorf("missing library: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("xyz  linux-"+arch+"/libonnxruntime.so.1\n"), 0o644)
	if _, err := ortLibrary(dir, arch); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad pin: %v", err)
	}
}

// TestRefusesForeignBinaries: binaries of another architecture are not
// packaged as this one's.
func TestRefusesForeignBinaries(t *testing.T) {
	host := hostArch(t)
	other := "arm64"
	if host == "arm64" {
		other = "amd64"
	}
	o := testOptionsWithORT(t, fakeORT(t, other, "/bin/true"))
	o.Arch = other
	_, err := buildPackages(o)
	if err == nil || !strings.Contains(err.Error(), "vigild is built for") || !strings.Contains(err.Error(), "not "+other) {
		t.Fatalf("foreign binaries: %v", err)
	}
}

func TestRefusesBadFlags(t *testing.T) {
	o := testOptionsWithORT(t, fakeORT(t, hostArch(t), "/bin/true"))
	for _, c := range []struct {
		mutate func(*options)
		want   string
	}{
		{func(o *options) { o.Arch = "riscv64" }, `--arch "riscv64"`},
		{func(o *options) { o.Version = "1.0-1" }, "--version"},
		{func(o *options) { o.Compression = "bzip2" }, "--compression"},
		{func(o *options) { o.BinDir = "/nonexistent" }, "--bin /nonexistent"},
	} {
		oo := o
		c.mutate(&oo)
		if _, err := buildPackages(oo); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error naming %s, got %v", c.want, err)
		}
	}
}
