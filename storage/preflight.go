package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/table"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Badger opens its tables in goroutines of its own, and a table whose
// footer points outside the file makes one of them panic: the process
// dies and no recover can stop it. Two defences keep such a directory from
// crash-looping the daemon: a check of every table's footer before Badger
// sees it, and a marker that counts opens that never finished.
//
// And Badger creates a memtable log or a value-log file, then sizes it: a
// kill between the two leaves an empty file that Badger refuses to open.
// Such a file never held data; the preflight removes it.

// openingMarker is the file in the data directory that counts opens that
// started and never finished; it is removed when an open ends either way.
const openingMarker = "VIGIL-OPENING"

// maxUnfinishedOpens is how many opens may die in a row before the
// directory is treated as one that cannot be opened.
const maxUnfinishedOpens = 3

// beginOpen checks and increments the unfinished-open counter.
func beginOpen(dir string) error {
	p := filepath.Join(dir, openingMarker)
	n := 0
	if b, err := os.ReadFile(p); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: read %s: %w", p, err)
	}
	if n >= maxUnfinishedOpens {
		return unopenable("the last %d opens of this directory died before finishing", n)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("storage: write %s: %w", p, err)
	}
	_, err = fmt.Fprintln(f, n+1)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storage: write %s: %w", p, err)
	}
	return nil
}

// endOpen removes the marker: the open finished, well or not, without
// dying.
func endOpen(dir string) {
	_ = os.Remove(filepath.Join(dir, openingMarker))
}

// checkTables reads the footer of every table the manifest lists and
// checks that the checksum and the index it points to lie inside the file.
// (A table ends with its index, the index length in 4 bytes, a checksum and
// the checksum length in 4 bytes.) Tables the manifest does not list, such
// as one a crash left half-written, Badger deletes itself. A manifest that
// does not replay is left for badger.Open to report.
func checkTables(opts badger.Options) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = unopenable("reading the manifest panicked: %v", r)
		}
	}()
	f, err := os.Open(filepath.Join(opts.Dir, "MANIFEST"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	mf, _, err := badger.ReplayManifestFile(f, opts.ExternalMagicVersion, opts)
	f.Close()
	if err != nil {
		return nil
	}
	for id := range mf.Tables {
		p := table.NewFilename(id, opts.Dir)
		if err := checkTable(p); err != nil {
			return unopenable("table %s: %w", filepath.Base(p), err)
		}
	}
	return nil
}

func checkTable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	var b [4]byte
	readU32 := func(off int64) (int64, error) {
		if off < 0 || off+4 > size {
			return 0, fmt.Errorf("footer at %d outside a file of %d bytes", off, size)
		}
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0, err
		}
		return int64(binary.BigEndian.Uint32(b[:])), nil
	}
	pos := size - 4
	chk, err := readU32(pos)
	if err != nil {
		return err
	}
	pos -= chk + 4
	idx, err := readU32(pos)
	if err != nil {
		return err
	}
	if pos-idx < 0 {
		return fmt.Errorf("index of %d bytes does not fit in a file of %d bytes", idx, size)
	}
	return nil
}

// preflight runs the checks that need no Badger, under Badger's own
// directory lock so that it never touches the files of a store another
// process has open: removes empty logs a kill left, and checks the tables'
// footers.
func preflight(opts badger.Options, log *zap.Logger) error {
	d, err := os.Open(opts.Dir)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("storage: lock %s: %w (is another process using it?)", opts.Dir, err)
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN)
	if err := removeEmptyLogs(opts.Dir, log); err != nil {
		return err
	}
	return checkTables(opts)
}

// removeEmptyLogs deletes zero-length memtable logs (.mem) and value-log
// files (.vlog): created and never sized, they hold nothing.
func removeEmptyLogs(dir string, log *zap.Logger) error {
	for _, pattern := range []string{"*.mem", "*.vlog"} {
		paths, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, p := range paths {
			info, err := os.Stat(p)
			if err != nil || info.Size() != 0 {
				continue
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("storage: remove the empty %s: %w", p, err)
			}
			log.Warn("removed an empty log file a crash left", zap.String("file", p))
		}
	}
	return nil
}
