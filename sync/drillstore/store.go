package drillstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/sync/batch"
)

// ErrNotFound is returned for a report or run the store does not hold.
var ErrNotFound = errors.New("not in the drill store")

// Store is a directory of drill reports and fleet runs.
type Store struct{ root string }

// Open makes dir (and its parents, reports/ and runs/) if needed and
// opens it.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("drill store: no directory given")
	}
	for _, d := range []string{dir, filepath.Join(dir, "reports"), filepath.Join(dir, "runs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("drill store: %w", err)
		}
	}
	return &Store{root: dir}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.root }

// ReportPath is the file that holds vehicle's report id.
func (s *Store) ReportPath(vehicle, id string) string {
	return filepath.Join(s.root, "reports", vehicle, id+".json")
}

// RunPath is the file that holds run id.
func (s *Store) RunPath(id string) string { return filepath.Join(s.root, "runs", id+".json") }

func checkName(what, s string) error {
	if !batch.ValidName(s) {
		return fmt.Errorf("drill store: %s %q: want 1 to 64 of letters, digits, '_', '-', '.', not starting with '.'", what, s)
	}
	return nil
}

// SaveReport stores r, published by vehicle, under its ID, replacing a
// report of the same id. A report that names another vehicle is refused.
func (s *Store) SaveReport(vehicle string, r *drill.Report) error {
	if r == nil {
		return errors.New("drill store: no report")
	}
	if err := checkName("vehicle", vehicle); err != nil {
		return err
	}
	if err := checkName("report id", r.ID); err != nil {
		return err
	}
	if r.Vehicle != "" && r.Vehicle != vehicle {
		return fmt.Errorf("drill store: report %s names vehicle %q, not %q", r.ID, r.Vehicle, vehicle)
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("drill store: report %s: %w", r.ID, err)
	}
	dir := filepath.Join(s.root, "reports", vehicle)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("drill store: %w", err)
	}
	return writeFile(s.ReportPath(vehicle, r.ID), raw)
}

// Report reads vehicle's report id; ErrNotFound when there is none.
func (s *Store) Report(vehicle, id string) (*drill.Report, error) {
	if err := checkName("vehicle", vehicle); err != nil {
		return nil, err
	}
	if err := checkName("report id", id); err != nil {
		return nil, err
	}
	path := s.ReportPath(vehicle, id)
	var r drill.Report
	if err := readJSON(path, &r); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("drill store: report %s of %s: %w", id, vehicle, ErrNotFound)
		}
		return nil, err
	}
	if r.ID != id {
		return nil, fmt.Errorf("drill store: %s holds report %q", path, r.ID)
	}
	return &r, nil
}

// Reports reads every report of vehicle, newest (by Started) first; a
// vehicle with none has an empty list. A file that cannot be read makes
// an error that names it.
func (s *Store) Reports(vehicle string) ([]drill.Report, error) {
	if err := checkName("vehicle", vehicle); err != nil {
		return nil, err
	}
	ids, err := listIDs(filepath.Join(s.root, "reports", vehicle))
	if err != nil {
		return nil, err
	}
	out := make([]drill.Report, 0, len(ids))
	for _, id := range ids {
		r, err := s.Report(vehicle, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool { return newer(out[i].Started, out[j].Started, out[i].ID, out[j].ID) })
	return out, nil
}

// Vehicles lists the vehicles that have reports, sorted.
func (s *Store) Vehicles() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "reports"))
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("drill store: %w", err)
	}
	out := []string{}
	for _, e := range ents {
		if e.IsDir() && batch.ValidName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// SaveRun stores run under its ID, replacing a run of the same id (a
// run is saved when it starts and again when it ends).
func (s *Store) SaveRun(run *Run) error {
	if run == nil {
		return errors.New("drill store: no run")
	}
	if err := checkName("run id", run.ID); err != nil {
		return err
	}
	if err := run.Validate(); err != nil {
		return fmt.Errorf("drill store: run %s: %w", run.ID, err)
	}
	raw, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return fmt.Errorf("drill store: run %s: %w", run.ID, err)
	}
	if err := os.MkdirAll(filepath.Join(s.root, "runs"), 0o755); err != nil {
		return fmt.Errorf("drill store: %w", err)
	}
	return writeFile(s.RunPath(run.ID), raw)
}

// Run reads run id; ErrNotFound when there is none.
func (s *Store) Run(id string) (*Run, error) {
	if err := checkName("run id", id); err != nil {
		return nil, err
	}
	path := s.RunPath(id)
	var r Run
	if err := readJSON(path, &r); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("drill store: run %s: %w", id, ErrNotFound)
		}
		return nil, err
	}
	if r.ID != id {
		return nil, fmt.Errorf("drill store: %s holds run %q", path, r.ID)
	}
	return &r, nil
}

// Runs reads every run, newest (by Started) first. A file that cannot be
// read makes an error that names it.
func (s *Store) Runs() ([]Run, error) {
	ids, err := listIDs(filepath.Join(s.root, "runs"))
	if err != nil {
		return nil, err
	}
	out := make([]Run, 0, len(ids))
	for _, id := range ids {
		r, err := s.Run(id)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool { return newer(out[i].Started, out[j].Started, out[i].ID, out[j].ID) })
	return out, nil
}

// LastRun is the newest run of the drill name that started before
// before (the run to compare a new one with); false when there is none.
func (s *Store) LastRun(name string, before time.Time) (*Run, bool, error) {
	runs, err := s.Runs()
	if err != nil {
		return nil, false, err
	}
	for i := range runs {
		if runs[i].Name == name && runs[i].Started.Before(before) {
			return &runs[i], true, nil
		}
	}
	return nil, false, nil
}

func newer(a, b time.Time, aid, bid string) bool {
	if !a.Equal(b) {
		return a.After(b)
	}
	return aid > bid
}

// listIDs lists the ids of dir's <id>.json files; a missing dir has none.
func listIDs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("drill store: %w", err)
	}
	var ids []string
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && e.Type().IsRegular() && batch.ValidName(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("drill store: %s: corrupt: %w", path, err)
	}
	return nil
}

// syncFile is (*os.File).Sync; a test may make it fail.
var syncFile = (*os.File).Sync

// writeFile replaces path with raw (mode 0644): a temporary file beside
// it, fsynced, renamed over it, the directory fsynced.
func writeFile(path string, raw []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("drill store: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o644); err == nil { // as the rollouts directory's files: the console may run as another user
		_, err = f.Write(raw)
	}
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("drill store: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("drill store: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("drill store: %w", err)
	}
	defer d.Close()
	if err = syncFile(d); err != nil {
		return fmt.Errorf("drill store: sync %s: %w", dir, err)
	}
	return nil
}
