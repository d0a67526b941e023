package main

import (
	"debug/elf"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// machines maps a Debian architecture to the ELF machine its binaries have.
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// libPackages maps the shared libraries Vigil's binaries and ONNX Runtime
// need to the Debian packages that provide them (the same names on amd64 and
// arm64 in bookworm and later).
var libPackages = map[string]string{
	"libc.so.6":             "libc6",
	"libm.so.6":             "libc6",
	"libdl.so.2":            "libc6",
	"librt.so.1":            "libc6",
	"libpthread.so.0":       "libc6",
	"libresolv.so.2":        "libc6",
	"ld-linux-x86-64.so.2":  "libc6",
	"ld-linux-aarch64.so.1": "libc6",
	"libstdc++.so.6":        "libstdc++6",
	"libgcc_s.so.1":         "libgcc-s1",
	"libonnxruntime.so.1":   "", // shipped in the vigil package itself
}

// elfDepends reads the ELF files and returns the Debian dependencies they
// need: libc6 with the highest GLIBC_x.y symbol version any of them uses, and
// the other libraries' packages. Every file must be an ELF object for arch;
// one built for another architecture, or needing a library nobody mapped to
// a package, is an error that names it.
func elfDepends(arch string, paths []string) ([]string, error) {
	want, ok := machines[arch]
	if !ok {
		return nil, fmt.Errorf("--arch %q: want amd64 or arm64", arch)
	}
	pkgs := map[string]bool{}
	var glibc []int
	for _, p := range paths {
		f, err := elf.Open(p)
		if err != nil {
			return nil, fmt.Errorf("%s: not an ELF file: %w", p, err)
		}
		if f.Machine != want {
			f.Close()
			return nil, fmt.Errorf("%s is built for %v, not %s", p, f.Machine, arch)
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: dynamic section: %w", p, err)
		}
		if len(libs) == 0 {
			f.Close()
			return nil, fmt.Errorf("%s is statically linked: Vigil's binaries are built with cgo against the C library", p)
		}
		for _, l := range libs {
			pkg, ok := libPackages[l]
			if !ok {
				f.Close()
				return nil, fmt.Errorf("%s needs %s, which no Debian package is known to provide: add it to libPackages in cmd/vigil-package", p, l)
			}
			if pkg != "" {
				pkgs[pkg] = true
			}
		}
		needs, err := f.DynamicVersionNeeds()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: symbol versions: %w", p, err)
		}
		for _, n := range needs {
			for _, d := range n.Needs {
				if v, ok := glibcVersion(d.Dep); ok && lessVersion(glibc, v) {
					glibc = v
				}
			}
		}
	}
	var deps []string
	for pkg := range pkgs {
		if pkg == "libc6" && glibc != nil {
			deps = append(deps, fmt.Sprintf("libc6 (>= %s)", joinInts(glibc)))
			continue
		}
		deps = append(deps, pkg)
	}
	sort.Strings(deps)
	return deps, nil
}

// glibcVersion parses "GLIBC_2.34" into [2 34]; other names are not glibc's.
func glibcVersion(dep string) ([]int, bool) {
	s, ok := strings.CutPrefix(dep, "GLIBC_")
	if !ok {
		return nil, false
	}
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, false // GLIBC_PRIVATE
		}
		v = append(v, n)
	}
	return v, true
}

func lessVersion(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ".")
}
