package blob

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// tempPrefix starts the name of every temporary file: hidden, and never a
// blob's or a manifest's name.
const tempPrefix = ".tmp-"

// writeAtomic writes data to path through a temporary file in its
// directory: written, synced, closed, renamed, and the directory synced.
// A crash at any point leaves path absent or whole.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()      //nolint:errcheck // closed already, or abandoned
			os.Remove(tmp) //nolint:errcheck // best effort: RemoveTemp finds it otherwise
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// mkdirAll creates dir and its missing parents, syncing each parent whose
// entries changed so the new directories survive a crash.
func mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	err := os.Mkdir(dir, 0o750)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
