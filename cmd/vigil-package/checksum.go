package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ortVersion is the ONNX Runtime release the package ships (the Makefile's
// ORT_VER, inference.ORTVersion).
const ortVersion = "1.24.3"

// ortLibrary returns the path of the arch's libonnxruntime.so.1 under dir
// (third_party/onnxruntime) after checking it against the SHA-256 pinned in
// dir/SHA256SUMS. A missing pin, a missing file or a mismatch is an error
// that names the file: the package never ships a library nobody pinned.
func ortLibrary(dir, arch string) (string, error) {
	rel := "linux-" + arch + "/libonnxruntime.so.1"
	sums := filepath.Join(dir, "SHA256SUMS")
	want, err := pinnedSum(sums, rel)
	if err != nil {
		return "", err
	}
	lib := filepath.Join(dir, ortVersion, filepath.FromSlash(rel))
	got, err := sha256File(lib)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("ONNX Runtime library %s is missing: run `make ort` (scripts/fetch-onnxruntime.sh)", lib)
	}
	if err != nil {
		return "", fmt.Errorf("ONNX Runtime library %s: %w", lib, err)
	}
	if got != want {
		return "", fmt.Errorf("ONNX Runtime library %s: sha256 %s, but %s pins %s for %s: refusing to package it (fetch it again with scripts/fetch-onnxruntime.sh)", lib, got, sums, want, rel)
	}
	return lib, nil
}

// pinnedSum reads the checksum that a sha256sum-format file pins for rel.
func pinnedSum(sums, rel string) (string, error) {
	f, err := os.Open(sums)
	if err != nil {
		return "", fmt.Errorf("pinned checksums: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return "", fmt.Errorf("%s line %d: want \"SHA256  FILE\"", sums, n)
		}
		if strings.TrimPrefix(fields[1], "*") != rel {
			continue
		}
		sum := strings.ToLower(fields[0])
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return "", fmt.Errorf("%s line %d: %q is not a SHA-256", sums, n, fields[0])
		}
		return sum, nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", sums, err)
	}
	return "", fmt.Errorf("%s pins no checksum for %s", sums, rel)
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
