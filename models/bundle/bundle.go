package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
)

// Bundle is a bundle opened for reading: its manifest, parsed but not
// verified, and its files.
type Bundle struct {
	// Path is where it was opened from.
	Path string
	// Packed is true for the single-file (tar) form, false for a
	// directory.
	Packed   bool
	Manifest *Manifest
	// Files holds the bundle's files, bundle.json at the root among them.
	Files fs.FS

	f *os.File // the tar, for a packed bundle
}

// Open opens a bundle in either form: a directory holding bundle.json and
// the files, or a tar whose first entry is bundle.json (Pack). It parses
// the manifest (Parse's refusals) and, for a tar, indexes every entry
// (refusing anything but regular files and directories, and paths
// CheckPath refuses); it reads no file's contents and writes nothing.
// Close releases it.
func Open(path string) (*Bundle, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if st.IsDir() {
		return openDir(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	data, files, err := indexTar(f, st.Size())
	if err == nil {
		var m *Manifest
		if m, err = Parse(data); err == nil {
			return &Bundle{Path: path, Packed: true, Manifest: m, Files: files, f: f}, nil
		}
	}
	f.Close()
	return nil, fmt.Errorf("%s: %w", path, err)
}

func openDir(dir string) (*Bundle, error) {
	files := os.DirFS(dir)
	mpath := dir + string(os.PathSeparator) + ManifestName
	st, err := os.Lstat(mpath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s has no %s: not a bundle directory", ErrMalformed, dir, ManifestName)
	case err != nil:
		return nil, fmt.Errorf("bundle: %w", err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadPath, mpath)
	case st.Size() > MaxManifestSize:
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrMalformed, mpath, st.Size(), MaxManifestSize)
	}
	data, err := fs.ReadFile(files, ManifestName)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return &Bundle{Path: dir, Manifest: m, Files: files}, nil
}

// Verify is Verify(b.Manifest, b.Files, p, now).
func (b *Bundle) Verify(p Policy, now time.Time) error {
	return Verify(b.Manifest, b.Files, p, now)
}

// Close releases the tar of a packed bundle; for a directory it does
// nothing.
func (b *Bundle) Close() error {
	if b.f == nil {
		return nil
	}
	return b.f.Close()
}

// HashFiles lists every regular file of files but a bundle.json at its
// root, with its size and SHA-256, sorted by path: the Files of a new
// manifest. A path CheckPath refuses, a symbolic link or another special
// file is refused (ErrBadPath).
func HashFiles(files fs.FS) ([]File, error) {
	var out []File
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() || p == ManifestName:
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: %s is a %s, not a regular file", ErrBadPath, p, typeName(d.Type()))
		}
		if err := CheckPath(p); err != nil {
			return err
		}
		r, err := files.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		out = append(out, File{Path: p, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n})
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrBadPath) {
			return nil, err
		}
		return nil, fmt.Errorf("bundle: hash files: %w", err)
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// Pack writes the single-file form of a bundle to w: a tar holding
// bundle.json (Encode(m)) first, then every file of m.Files from files in
// the manifest's order, regular entries of mode 0644 dated m.Created, so
// that the same bundle packs to the same bytes. Each file is checked
// against its size and SHA-256 as it is copied (ErrFileMismatch,
// ErrMissingFile); on an error w holds a partial tar, which the caller
// discards. m need not be signed.
func Pack(w io.Writer, m *Manifest, files fs.FS) error {
	manifest, err := Encode(m)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: m.Created}
	}
	if err := tw.WriteHeader(hdr(ManifestName, int64(len(manifest)))); err != nil {
		return fmt.Errorf("bundle: pack: %w", err)
	}
	if _, err := tw.Write(manifest); err != nil {
		return fmt.Errorf("bundle: pack: %w", err)
	}
	for _, f := range m.Files {
		if err := packFile(tw, hdr(f.Path, f.Size), files, f); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: pack: %w", err)
	}
	return nil
}

func packFile(tw *tar.Writer, hdr *tar.Header, files fs.FS, f File) error {
	r, err := files.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s is listed in the manifest but not in the files", ErrMissingFile, f.Path)
	}
	if err != nil {
		return fmt.Errorf("bundle: pack: %w", err)
	}
	defer r.Close()
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("bundle: pack %s: %w", f.Path, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(r, f.Size))
	if err != nil {
		return fmt.Errorf("bundle: pack %s: %w", f.Path, err)
	}
	var one [1]byte
	if more, _ := r.Read(one[:]); n != f.Size || more > 0 {
		return fmt.Errorf("%w: %s changed size since the manifest was made (%d bytes)", ErrFileMismatch, f.Path, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrFileMismatch, f.Path, got, f.SHA256)
	}
	return nil
}
