package drillstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-av/vigil/agent/drill"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

func report(vehicle, name string, started time.Time, passed bool, failoverMS float64) *drill.Report {
	return &drill.Report{
		Version: drill.ReportVersion, ID: started.UTC().Format("20060102T150405Z") + "-" + name, Name: name,
		Vehicle: vehicle, Started: started, Ended: started.Add(15 * time.Second), Passed: passed,
		Totals: drill.Figures{Requests: 450, OK: 450, DetectionMS: 40, FailoverMS: failoverMS, BackToPrimaryMS: 900, Availability: 1},
	}
}

func TestEmptyStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "drills"))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.Vehicles()
	if err != nil || len(vs) != 0 {
		t.Fatalf("vehicles %v, %v", vs, err)
	}
	rs, err := s.Reports("car-1")
	if err != nil || len(rs) != 0 {
		t.Fatalf("reports %v, %v", rs, err)
	}
	runs, err := s.Runs()
	if err != nil || len(runs) != 0 {
		t.Fatalf("runs %v, %v", runs, err)
	}
	if _, ok, err := s.LastRun("primary-hang", t0); ok || err != nil {
		t.Fatalf("last run %v, %v", ok, err)
	}
	if _, err := s.Report("car-1", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("report: %v", err)
	}
	if _, err := s.Run("x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("run: %v", err)
	}
	if _, err := Open(""); err == nil {
		t.Fatal("open of no directory")
	}
}

func TestReportsRoundTripNewestFirst(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	old, mid, late := report("car-1", "primary-hang", t0, true, 20), report("car-1", "primary-hang", t0.Add(time.Hour), false, 80), report("car-1", "link-cut", t0.Add(2*time.Hour), true, -1)
	for _, r := range []*drill.Report{mid, late, old} {
		if err := s.SaveReport("car-1", r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveReport("car-2", report("", "primary-hang", t0, true, 10)); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Reports("car-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].ID != late.ID || rs[1].ID != mid.ID || rs[2].ID != old.ID {
		t.Fatalf("order: %v", ids(rs))
	}
	if rs[1].Totals.FailoverMS != 80 || rs[1].Passed || !rs[1].Started.Equal(mid.Started) {
		t.Fatalf("round trip: %+v", rs[1])
	}
	got, err := s.Report("car-1", old.ID)
	if err != nil || got.Totals.FailoverMS != 20 {
		t.Fatalf("report: %+v, %v", got, err)
	}
	vs, err := s.Vehicles()
	if err != nil || strings.Join(vs, ",") != "car-1,car-2" {
		t.Fatalf("vehicles %v, %v", vs, err)
	}
	// Replacing a report leaves one file and no temporary.
	mid.Passed = true
	if err := s.SaveReport("car-1", mid); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "reports", "car-1"))
	if len(ents) != 3 {
		t.Fatalf("files: %v", ents)
	}
	if st, err := os.Stat(s.ReportPath("car-1", mid.ID)); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("report file mode: %v, %v", st.Mode(), err)
	}
	if got, _ := s.Report("car-1", mid.ID); !got.Passed {
		t.Fatal("replaced report not read back")
	}
}

func ids(rs []drill.Report) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestBadNamesRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "drills"))
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct{ vehicle, id string }{
		{"car-1", "../../escape"}, {"car-1", "a/b"}, {"car-1", ".hidden"}, {"car-1", ""},
		{"..", "x"}, {"car/1", "x"}, {"", "x"}, {"car-1", strings.Repeat("a", 65)},
	}
	for _, b := range bad {
		r := report("", "primary-hang", t0, true, 1)
		r.ID = b.id
		if err := s.SaveReport(b.vehicle, r); err == nil {
			t.Errorf("saved %q/%q", b.vehicle, b.id)
		}
		if _, err := s.Report(b.vehicle, b.id); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("read %q/%q: %v", b.vehicle, b.id, err)
		}
	}
	if err := s.SaveRun(&Run{ID: "../x", Name: "n"}); err == nil || !strings.Contains(err.Error(), "run id") {
		t.Errorf("run ../x: %v", err)
	}
	if _, err := s.Run("../x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("read run ../x: %v", err)
	}
	// Nothing was written outside the store.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("written outside the store: %v", ents)
	}
	// A report naming another vehicle is refused.
	if err := s.SaveReport("car-2", report("car-1", "primary-hang", t0, true, 1)); err == nil || !strings.Contains(err.Error(), `names vehicle "car-1"`) {
		t.Fatalf("other vehicle's report: %v", err)
	}
}

func TestCorruptFileNamed(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveReport("car-1", report("car-1", "primary-hang", t0, true, 1)); err != nil {
		t.Fatal(err)
	}
	bad := s.ReportPath("car-1", "20261206T040000Z-primary-hang")
	if err := os.WriteFile(bad, []byte(`{"id": "20261206T04`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reports("car-1"); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("reports: %v", err)
	}
	// A file whose id is not its name's.
	other := s.ReportPath("car-1", "renamed")
	raw, _ := os.ReadFile(s.ReportPath("car-1", "20261206T030000Z-primary-hang"))
	os.WriteFile(other, raw, 0o644)
	if _, err := s.Report("car-1", "renamed"); err == nil || !strings.Contains(err.Error(), other) {
		t.Fatalf("renamed: %v", err)
	}
	badRun := s.RunPath("20261206T040000Z-primary-hang")
	os.WriteFile(badRun, []byte("not json"), 0o644)
	if _, err := s.Runs(); err == nil || !strings.Contains(err.Error(), badRun) {
		t.Fatalf("runs: %v", err)
	}
	if _, _, err := s.LastRun("primary-hang", t0); err == nil {
		t.Fatal("last run over a corrupt file")
	}
	// Temporary files are not listed.
	os.Remove(badRun)
	os.WriteFile(filepath.Join(s.Dir(), "runs", ".x.json.tmp-1"), []byte("junk"), 0o644)
	if runs, err := s.Runs(); err != nil || len(runs) != 0 {
		t.Fatalf("runs with a temporary: %v, %v", runs, err)
	}
}

func TestWriteFailureLeavesOldFile(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := report("car-1", "primary-hang", t0, true, 1)
	if err := s.SaveReport("car-1", r); err != nil {
		t.Fatal(err)
	}
	syncFile = func(*os.File) error { return errors.New("injected ENOSPC") }
	defer func() { syncFile = (*os.File).Sync }()
	r.Passed = false
	if err := s.SaveReport("car-1", r); err == nil || !strings.Contains(err.Error(), "injected ENOSPC") {
		t.Fatalf("save: %v", err)
	}
	syncFile = (*os.File).Sync
	got, err := s.Report("car-1", r.ID)
	if err != nil || !got.Passed {
		t.Fatalf("old report lost: %+v, %v", got, err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "reports", "car-1"))
	if len(ents) != 1 {
		t.Fatalf("temporary left: %v", ents)
	}
}
