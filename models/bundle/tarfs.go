package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// tarFS serves the files of a packed bundle straight from the tar: each
// file is a section of the underlying reader, found once when the tar is
// indexed. It is read-only, and safe for concurrent use as far as r is
// (an *os.File is).
type tarFS struct {
	r       io.ReaderAt
	entries map[string]*tarEntry // by clean path; "." is the root
}

type tarEntry struct {
	name     string // clean path
	dir      bool
	off      int64
	size     int64
	modTime  time.Time
	children []string // base names, sorted, for a directory
}

// indexTar reads every header of the tar in r (size bytes) and returns
// the manifest's bytes (the first entry, which must be bundle.json) and
// the files. Only regular files and directories are allowed; names are
// held to CheckPath, a leading "./" is dropped, and a name may appear once.
func indexTar(r io.ReaderAt, size int64) ([]byte, *tarFS, error) {
	sr := io.NewSectionReader(r, 0, size)
	tr := tar.NewReader(sr)
	t := &tarFS{r: r, entries: map[string]*tarEntry{".": {name: ".", dir: true}}}
	var manifest []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: tar: %v", ErrMalformed, err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if hdr.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
			if name == "" || name == "." {
				continue
			}
		}
		if manifest == nil {
			if name != ManifestName || hdr.Typeflag != tar.TypeReg {
				return nil, nil, fmt.Errorf("%w: tar: the first entry is %q; a packed bundle starts with %s", ErrMalformed, hdr.Name, ManifestName)
			}
			if hdr.Size > MaxManifestSize {
				return nil, nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrMalformed, ManifestName, hdr.Size, MaxManifestSize)
			}
			off, err := sr.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: tar: %v", ErrMalformed, err)
			}
			if manifest, err = io.ReadAll(tr); err != nil {
				return nil, nil, fmt.Errorf("%w: tar: read %s: %v", ErrMalformed, ManifestName, err)
			}
			if err := t.add(&tarEntry{name: ManifestName, off: off, size: hdr.Size, modTime: hdr.ModTime}); err != nil {
				return nil, nil, err
			}
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return nil, nil, fmt.Errorf("%w: tar entry %q is not a regular file or a directory (type %q)", ErrBadPath, hdr.Name, hdr.Typeflag)
		default:
			return nil, nil, fmt.Errorf("%w: tar entry %q has type %q; a bundle holds regular files and directories only", ErrMalformed, hdr.Name, hdr.Typeflag)
		}
		if err := CheckPath(name); err != nil {
			return nil, nil, fmt.Errorf("%w (tar entry)", err)
		}
		if old, dup := t.entries[name]; dup {
			if old.dir && hdr.Typeflag == tar.TypeDir {
				continue // made already as the parent of an earlier entry
			}
			return nil, nil, fmt.Errorf("%w: tar: %q appears twice", ErrMalformed, name)
		}
		e := &tarEntry{name: name, dir: hdr.Typeflag == tar.TypeDir, size: hdr.Size, modTime: hdr.ModTime}
		if !e.dir {
			// tar.Reader reads nothing ahead: after Next, sr stands at
			// the entry's first byte.
			if e.off, err = sr.Seek(0, io.SeekCurrent); err != nil {
				return nil, nil, fmt.Errorf("%w: tar: %v", ErrMalformed, err)
			}
		} else {
			e.size = 0
		}
		if err := t.add(e); err != nil {
			return nil, nil, err
		}
	}
	if manifest == nil {
		return nil, nil, fmt.Errorf("%w: tar: empty; a packed bundle starts with %s", ErrMalformed, ManifestName)
	}
	for _, e := range t.entries {
		slices.Sort(e.children)
	}
	return manifest, t, nil
}

// add records e and the directories above it.
func (t *tarFS) add(e *tarEntry) error {
	t.entries[e.name] = e
	for child := e.name; child != "."; {
		parent := path.Dir(child)
		p, ok := t.entries[parent]
		if !ok {
			p = &tarEntry{name: parent, dir: true}
			t.entries[parent] = p
		} else if !p.dir {
			return fmt.Errorf("%w: tar: %q is a file and a directory", ErrMalformed, parent)
		}
		base := path.Base(child)
		if slices.Contains(p.children, base) {
			return nil // the rest of the chain is recorded already
		}
		p.children = append(p.children, base)
		child = parent
	}
	return nil
}

func (t *tarFS) lookup(op, name string) (*tarEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	e, ok := t.entries[name]
	if !ok {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return e, nil
}

// Open implements fs.FS.
func (t *tarFS) Open(name string) (fs.File, error) {
	e, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e.dir {
		return &tarDir{fsys: t, e: e}, nil
	}
	return &tarFile{e: e, SectionReader: io.NewSectionReader(t.r, e.off, e.size)}, nil
}

// Stat implements fs.StatFS.
func (t *tarFS) Stat(name string) (fs.FileInfo, error) {
	e, err := t.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return tarInfo{e}, nil
}

// ReadDir implements fs.ReadDirFS.
func (t *tarFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := t.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !e.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	out := make([]fs.DirEntry, len(e.children))
	for i, c := range e.children {
		out[i] = fs.FileInfoToDirEntry(tarInfo{t.entries[path.Join(name, c)]})
	}
	return out, nil
}

type tarInfo struct{ e *tarEntry }

func (i tarInfo) Name() string       { return path.Base(i.e.name) }
func (i tarInfo) Size() int64        { return i.e.size }
func (i tarInfo) ModTime() time.Time { return i.e.modTime }
func (i tarInfo) IsDir() bool        { return i.e.dir }
func (i tarInfo) Sys() any           { return nil }
func (i tarInfo) Mode() fs.FileMode {
	if i.e.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

type tarFile struct {
	e *tarEntry
	*io.SectionReader
}

func (f *tarFile) Stat() (fs.FileInfo, error) { return tarInfo{f.e}, nil }
func (f *tarFile) Close() error               { return nil }

type tarDir struct {
	fsys *tarFS
	e    *tarEntry
	pos  int
}

func (d *tarDir) Stat() (fs.FileInfo, error) { return tarInfo{d.e}, nil }
func (d *tarDir) Close() error               { return nil }
func (d *tarDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.e.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *tarDir) ReadDir(n int) ([]fs.DirEntry, error) {
	all, err := d.fsys.ReadDir(d.e.name)
	if err != nil {
		return nil, err
	}
	rest := all[d.pos:]
	if n <= 0 {
		d.pos = len(all)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.pos += len(rest)
	return rest, nil
}
