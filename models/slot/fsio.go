package slot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// stepHook, when set, is called at each named step of a change (install.*,
// promote.*, rollback.*, commit.*, trial.*, discard.*, reject.*, open.*):
// the crash test's child blocks there to be killed. See doc.go for the
// steps.
var stepHook func(step string)

func step(name string) {
	if stepHook != nil {
		stepHook(name)
	}
}

// syncFile is what the store writes new files through: an *os.File, or in
// tests a file whose disk fills up.
type syncFile interface {
	io.Writer
	Sync() error
	Close() error
}

// create makes a new file (slot files and the temporary table); tests
// replace it to inject a full disk.
var create = func(name string) (syncFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// errNotDurable wraps an error met after the new table was renamed into
// place: the switch happened and the store follows it, but a power loss
// before the directory is synced could undo it.
var errNotDurable = errors.New("slot table switched but its directory was not synced")

// writeTable switches slots.json to t: it writes slots.json.tmp, fsyncs it,
// renames it over slots.json and fsyncs the directory. An error before the
// rename leaves the old table (and removes the temporary one); an error
// after it wraps errNotDurable.
func writeTable(dir string, t Table, op string) error {
	b, err := t.Encode()
	if err != nil {
		return err
	}
	final := filepath.Join(dir, TableName)
	tmp := final + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	if err := writeFileSync(tmp, b); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write slot table %s: %w", tmp, err)
	}
	step(op + ".table-temp")
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("switch slot table %s: %w", final, err)
	}
	step(op + ".table-renamed")
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%w: %w", errNotDurable, err)
	}
	return nil
}

func writeFileSync(name string, b []byte) error {
	f, err := create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// removeSlotDirs removes slot directories the table no longer names, after
// the switch is durable. It removes one file first and calls the
// <op>.removing step, so a crash test can kill the process with a
// directory half gone.
func removeSlotDirs(root, op string, dirs ...string) error {
	step(op + ".switched")
	var errs []error
	hooked := false
	for _, d := range dirs {
		abs := filepath.Join(root, filepath.FromSlash(d))
		if !hooked {
			if first := firstFile(abs); first != "" {
				if err := os.Remove(first); err != nil {
					errs = append(errs, err)
				}
				step(op + ".removing")
				hooked = true
			}
		}
		if err := os.RemoveAll(abs); err != nil {
			errs = append(errs, fmt.Errorf("remove old slot %s: %w", abs, err))
		}
	}
	return errors.Join(errs...)
}

// firstFile returns a regular file under dir, or "" if it holds none.
func firstFile(dir string) string {
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	return found
}
