package sink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The small files the sink keeps beside the segments: a restored store's
// lineage (lineage.go) and a store's last heartbeat (heartbeat.go). Both
// are written whole to a temporary name, synced, and put in place by one
// link or rename, after which the directory is synced: a reader sees the
// old file or the new one, never part of one, and a crash leaves at most
// a temporary file, which Open removes.

// tmpPrefix starts the temporary names of the sink's writes; Open
// removes what a crash left.
const tmpPrefix = ".tmp-"

// writeTemp writes b to a new temporary file in dir and syncs it; it
// returns its path.
func (s *Sink) writeTemp(dir, name string, b []byte) (string, error) {
	tmp := filepath.Join(dir, fmt.Sprintf("%s%s-%s-%d", tmpPrefix, name, s.writer, s.ntmp.Add(1)))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return "", err
	}
	if writeHook != nil {
		err = writeHook(filepath.Join(dir, name))
	}
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// createOnce makes dir/name hold b unless it exists: it returns
// created false and the file's content when another writer (another
// replica, or this one before a crash) made it first. Creation is one
// link(2), which never replaces a file, so of two writers racing, one
// wins and the other reads what it wrote.
func (s *Sink) createOnce(dir, name string, b []byte) (created bool, existing []byte, err error) {
	path := filepath.Join(dir, name)
	if old, err := os.ReadFile(path); err == nil {
		return false, old, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, nil, fmt.Errorf("sink: read %s: %w", path, err)
	}
	tmp, err := s.writeTemp(dir, name, b)
	if err != nil {
		return false, nil, fmt.Errorf("sink: write %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		old, rerr := os.ReadFile(path)
		if rerr != nil {
			return false, nil, fmt.Errorf("sink: read %s: %w", path, rerr)
		}
		return false, old, nil
	} else if err != nil {
		return false, nil, fmt.Errorf("sink: write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return false, nil, fmt.Errorf("sink: write %s: sync directory: %w", path, err)
	}
	return true, nil, nil
}

// replace makes dir/name hold b, whatever it held.
func (s *Sink) replace(dir, name string, b []byte) error {
	path := filepath.Join(dir, name)
	tmp, err := s.writeTemp(dir, name, b)
	if err != nil {
		return fmt.Errorf("sink: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sink: write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sink: write %s: sync directory: %w", path, err)
	}
	return nil
}

// removeTemps removes the temporary files a crash left in dir.
func removeTemps(dir string) error {
	es, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sink: recover: %w", err)
	}
	for _, e := range es {
		if len(e.Name()) > len(tmpPrefix) && e.Name()[:len(tmpPrefix)] == tmpPrefix && !e.IsDir() {
			p := filepath.Join(dir, e.Name())
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sink: recover: remove %s: %w", p, err)
			}
		}
	}
	return nil
}
