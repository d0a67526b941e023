package bundlelink

import (
	"errors"
	"io"
	"io/fs"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
)

// CheckPolicy is a Preflight that holds the manifest to everything
// bundle.Verify checks before the files — its fields, the signature
// against p's trusted keys, created and expires against now(), min_vigil,
// the execution providers, the contract in each role the vehicle runs,
// the anti-rollback floor — so that a bundle the vehicle would refuse
// never moves a chunk. It runs bundle.Verify over no files: Verify checks
// the files last, so a manifest that passes everything else is refused
// only for its first missing file (bundle.ErrMissingFile), which is
// taken as a pass; the caller still runs bundle.Verify on the staged
// bundle.
func CheckPolicy(p bundle.Policy, now func() time.Time) Preflight {
	return func(m *bundle.Manifest) error {
		err := bundle.Verify(m, noFiles{}, p, now())
		if errors.Is(err, bundle.ErrMissingFile) {
			return nil
		}
		return err
	}
}

// noFiles is an fs.FS holding an empty root directory.
type noFiles struct{}

func (noFiles) Open(name string) (fs.File, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return emptyDir{}, nil
}

type emptyDir struct{}

func (emptyDir) Stat() (fs.FileInfo, error) { return emptyDir{}, nil }
func (emptyDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: errors.New("is a directory")}
}
func (emptyDir) Close() error { return nil }
func (emptyDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if n > 0 {
		return nil, io.EOF
	}
	return nil, nil
}
func (emptyDir) Name() string       { return "." }
func (emptyDir) Size() int64        { return 0 }
func (emptyDir) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (emptyDir) ModTime() time.Time { return time.Time{} }
func (emptyDir) IsDir() bool        { return true }
func (emptyDir) Sys() any           { return nil }
