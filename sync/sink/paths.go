package sink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const suffix = ".batch"

// fileName is the name of an earlier version's one-batch file.
func fileName(r Range) string { return fmt.Sprintf("%020d-%020d%s", r.First, r.Last, suffix) }

func parseFileName(name string) (Range, bool) {
	var r Range
	if !strings.HasSuffix(name, suffix) || len(name) != 41+len(suffix) {
		return r, false
	}
	if _, err := fmt.Sscanf(name, "%020d-%020d"+suffix, &r.First, &r.Last); err != nil || r.First == 0 || r.Last < r.First {
		return r, false
	}
	return r, true
}

// storeDir is the directory name of a store id: 16 lowercase hex digits.
func storeDir(id uint64) string { return fmt.Sprintf("%016x", id) }

// parseStoreDir is the inverse of storeDir; it refuses any other spelling
// and the id 0.
func parseStoreDir(name string) (uint64, bool) {
	if len(name) != 16 {
		return 0, false
	}
	var id uint64
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= '0' && c <= '9':
			id = id<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			id = id<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return id, id != 0
}

// subdirs lists the directories in dir whose names pass ok.
func subdirs(dir string, ok func(string) bool) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		if e.IsDir() && ok(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func isStoreDir(name string) bool { _, ok := parseStoreDir(name); return ok }

// dir is the directory of k's files.
func (s *Sink) dir(k key) string {
	return filepath.Join(s.root, k.vehicle, storeDir(k.store), k.stream)
}

// mkdirs creates <root>/<vehicle>/<store>/<stream>, syncing each parent
// whose entries changed so the new directories survive a crash.
func (s *Sink) mkdirs(k key) error {
	return s.mkdirPath(k.vehicle, storeDir(k.store), k.stream)
}

// mkdirsStore creates <root>/<vehicle>/<store>, as mkdirs does.
func (s *Sink) mkdirsStore(vehicle string, store uint64) error {
	return s.mkdirPath(vehicle, storeDir(store))
}

func (s *Sink) mkdirPath(dirs ...string) error {
	parent := s.root
	for _, d := range dirs {
		path := filepath.Join(parent, d)
		err := os.Mkdir(path, 0o750)
		if err == nil {
			err = syncDir(parent)
		} else if errors.Is(err, os.ErrExist) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("sink: create %s: %w", path, err)
		}
		parent = path
	}
	return nil
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
