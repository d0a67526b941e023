package slot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func slotState(t *testing.T, s *Store, role Role) (active, candidate, previous string) {
	t.Helper()
	rs, err := s.Slots(role)
	if err != nil {
		t.Fatal(err)
	}
	show := func(sl *Slot) string {
		if sl == nil {
			return "-"
		}
		return fmt.Sprintf("%s v%d %s", sl.Model.Name, sl.Model.Version, sl.State)
	}
	return show(rs.Active), show(rs.Candidate), show(rs.Previous)
}

func expectSlots(t *testing.T, s *Store, role Role, active, candidate, previous string) {
	t.Helper()
	a, c, p := slotState(t, s, role)
	if a != active || c != candidate || p != previous {
		t.Fatalf("%s slots: active %q candidate %q previous %q; want %q %q %q", role, a, c, p, active, candidate, previous)
	}
}

// TestLifecycle walks one role through install, trial, promotion, commit,
// a second and third promotion and a rollback, checking the slots, the
// floor, the quarantine and the directories on disk at each step, and
// that a reopened store reads the same table.
func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if b, err := os.ReadFile(filepath.Join(dir, TableName)); err != nil || !strings.Contains(string(b), `"format": 1`) {
		t.Fatalf("a new store has no table of format 1: %v %s", err, b)
	}
	expectSlots(t, s, Primary, "-", "-", "-")

	install(t, s, Primary, "pilot", 1)
	expectSlots(t, s, Primary, "-", "pilot v1 staged", "-")
	p, err := s.CandidatePath(Primary, "model.onnx")
	if err != nil || p != filepath.Join(dir, "primary", "slot-1", "model.onnx") {
		t.Fatalf("CandidatePath = %q, %v", p, err)
	}
	must(t, s.StartTrial(Primary))
	expectSlots(t, s, Primary, "-", "pilot v1 trial", "-")
	must(t, s.Promote(Primary))
	expectSlots(t, s, Primary, "pilot v1 promoted", "-", "-")
	checkActiveFiles(t, s, Primary)
	must(t, s.Commit(Primary))
	expectSlots(t, s, Primary, "pilot v1 committed", "-", "-")
	if f := s.Table().Floors["pilot"]; f != 1 {
		t.Fatalf("floor after committing v1 = %d, want 1", f)
	}

	install(t, s, Primary, "pilot", 2)
	must(t, s.Promote(Primary))
	expectSlots(t, s, Primary, "pilot v2 promoted", "-", "pilot v1 committed")
	install(t, s, Primary, "pilot", 3)
	must(t, s.Promote(Primary))
	expectSlots(t, s, Primary, "pilot v3 promoted", "-", "pilot v2 promoted")
	if _, err := os.Stat(filepath.Join(dir, "primary", "slot-1")); !os.IsNotExist(err) {
		t.Fatalf("v1's slot directory is still there after it left the previous slot: %v", err)
	}
	if f := s.Table().Floors["pilot"]; f != 1 {
		t.Fatalf("floor after promoting v3 without commit = %d, want 1", f)
	}

	must(t, s.Rollback(Primary, "health gate: watchdog failed it"))
	expectSlots(t, s, Primary, "pilot v2 promoted", "-", "-")
	checkActiveFiles(t, s, Primary)
	q := s.Table().Quarantine
	if len(q) != 1 || q[0].Name != "pilot" || q[0].Version != 3 || q[0].Reason != "health gate: watchdog failed it" {
		t.Fatalf("quarantine after the rollback = %+v", q)
	}
	if _, err := os.Stat(filepath.Join(dir, "primary", "slot-3")); !os.IsNotExist(err) {
		t.Fatalf("v3's slot directory is still there after the rollback: %v", err)
	}
	must(t, s.Verify(Primary))

	again := openStore(t, dir)
	if encoded(t, again.Table()) != encoded(t, s.Table()) {
		t.Fatalf("reopened table differs:\n%s\nwant\n%s", encoded(t, again.Table()), encoded(t, s.Table()))
	}
	checkActiveFiles(t, again, Primary)
}

// TestInstallReplacesCandidate: a second install replaces the candidate
// and removes the old candidate's directory; other roles are untouched.
func TestInstallReplacesCandidate(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	populate(t, s)
	old, _ := s.Slots(Primary)
	install(t, s, Primary, "pilot", 4)
	expectSlots(t, s, Primary, "pilot v2 promoted", "pilot v4 staged", "pilot v1 committed")
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(old.Candidate.Dir))); !os.IsNotExist(err) {
		t.Fatalf("the replaced candidate's directory %s is still there: %v", old.Candidate.Dir, err)
	}
	expectSlots(t, s, Shadow, "shadow v1 committed", "-", "-")
}

// TestDiscardAndReject: Discard drops the candidate without quarantine,
// Reject drops it and quarantines its version; both remove its directory.
func TestDiscardAndReject(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	populate(t, s)
	must(t, s.Discard(Primary))
	expectSlots(t, s, Primary, "pilot v2 promoted", "-", "pilot v1 committed")
	if q := s.Table().Quarantine; len(q) != 0 {
		t.Fatalf("Discard quarantined %+v", q)
	}
	v4 := install(t, s, Primary, "pilot", 4)
	cand, _ := s.Slots(Primary)
	must(t, s.Reject(Primary, "trial: outputs diverged"))
	expectSlots(t, s, Primary, "pilot v2 promoted", "-", "pilot v1 committed")
	q := s.Table().Quarantine
	if len(q) != 1 || q[0].Hash != v4.Hash || q[0].Reason != "trial: outputs diverged" {
		t.Fatalf("quarantine after Reject = %+v", q)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(cand.Candidate.Dir))); !os.IsNotExist(err) {
		t.Fatalf("the rejected candidate's directory is still there: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "primary"))
	if len(ents) != 2 {
		t.Fatalf("primary holds %d slot directories, want 2 (active and previous)", len(ents))
	}
}

// TestInstallFromDirectory installs from a real directory (os.DirFS); files
// the version does not list are not copied.
func TestInstallFromDirectory(t *testing.T) {
	srcDir := t.TempDir()
	v, _ := testVersion("pilot", 1)
	for p, b := range testFiles("pilot", 1) {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(srcDir, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(srcDir, p), b, 0o644))
	}
	must(t, os.WriteFile(filepath.Join(srcDir, "stray.txt"), []byte("not listed"), 0o644))
	s := openStore(t, t.TempDir())
	must(t, s.Install(Primary, v, os.DirFS(srcDir), InstallOptions{}))
	must(t, s.Promote(Primary))
	checkActiveFiles(t, s, Primary)
	p, _ := s.ActivePath(Primary, "model.onnx")
	if _, err := os.Stat(filepath.Join(filepath.Dir(p), "stray.txt")); !os.IsNotExist(err) {
		t.Fatalf("a file the version does not list was copied: %v", err)
	}
}

// TestForcedInstalls: a signed command may force a version below the floor
// and a quarantined one; forcing the latter lifts its quarantine.
func TestForcedInstalls(t *testing.T) {
	s := openStore(t, t.TempDir())
	populate(t, s)
	v1, src1 := testVersion("pilot", 1)
	must(t, s.Install(Primary, v1, src1, InstallOptions{ForceBelowFloor: true}))
	expectSlots(t, s, Primary, "pilot v2 promoted", "pilot v1 staged", "pilot v1 committed")

	v5, src5 := testVersion("pilot", 5)
	must(t, s.Install(Primary, v5, src5, InstallOptions{}))
	must(t, s.Reject(Primary, "trial failed"))
	must(t, s.Install(Primary, v5, src5, InstallOptions{ForceQuarantined: true}))
	expectSlots(t, s, Primary, "pilot v2 promoted", "pilot v5 staged", "pilot v1 committed")
	if q := s.Table().Quarantine; len(q) != 0 {
		t.Fatalf("quarantine after a forced install = %+v, want it lifted", q)
	}
}

// TestCommitRaisesFloorOnly: committing a version below the floor (one
// installed by force) leaves the floor where it was; a second Commit
// changes nothing on disk.
func TestCommitRaisesFloorOnly(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	populate(t, s)
	must(t, s.Commit(Primary))
	if f := s.Table().Floors["pilot"]; f != 2 {
		t.Fatalf("floor after committing v2 = %d, want 2", f)
	}
	before := snapshot(t, dir)
	must(t, s.Commit(Primary))
	if snapshot(t, dir) != before {
		t.Fatal("a second Commit changed the store's directory")
	}
	must(t, s.Rollback(Primary, "by command"))
	must(t, s.Commit(Primary))
	if f := s.Table().Floors["pilot"]; f != 2 {
		t.Fatalf("floor after committing v1 again = %d, want it kept at 2", f)
	}
}

// TestOpenRemovesUnfinished: Open removes a temporary table and whatever a
// role directory holds that the table does not name, and keeps the rest,
// including other entries of the store's directory.
func TestOpenRemovesUnfinished(t *testing.T) {
	dir := t.TempDir()
	populate(t, openStore(t, dir))
	want := snapshot(t, dir)
	must(t, os.MkdirAll(filepath.Join(dir, "primary", "slot-40", "meta"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "primary", "slot-40", "model.onnx"), []byte("half"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "shadow", "junk"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, TableName+".tmp"), []byte("{"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "downloads"), 0o755))
	s := openStore(t, dir)
	must(t, os.Remove(filepath.Join(dir, "downloads")))
	if got := snapshot(t, dir); got != want {
		t.Fatalf("after Open:\n%s\nwant:\n%s", got, want)
	}
	checkNoLeftovers(t, s)
}

// TestOpenChecksActiveFiles: a missing or resized active file fails Open
// with an error naming it; nothing is removed.
func TestOpenChecksActiveFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		harm  func(p string) error
		want  error
		wants string
	}{
		{"missing", os.Remove, ErrMissingFile, "reinstall the version or roll back"},
		{"resized", func(p string) error { return os.Truncate(p, 10) }, ErrSizeMismatch, "10 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			populate(t, s)
			p, err := s.ActivePath(Shadow, "meta/contract.json")
			must(t, err)
			must(t, tc.harm(p))
			before := snapshot(t, dir)
			_, err = Open(dir)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("Open = %v, want %v naming %s", err, tc.want, p)
			}
			if snapshot(t, dir) != before {
				t.Fatal("a failed Open changed the store's directory")
			}
		})
	}
}

// TestVerify: Verify finds a same-size corruption that Open's size check
// cannot see.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	populate(t, s)
	must(t, s.Verify(Primary))
	p, _ := s.ActivePath(Primary, "model.onnx")
	b, _ := os.ReadFile(p)
	b[100] ^= 1
	must(t, os.WriteFile(p, b, 0o644))
	s = openStore(t, dir)
	if err := s.Verify(Primary); !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Verify of a flipped bit = %v, want ErrHashMismatch naming %s", err, p)
	}
	if err := s.Verify(Role("rear")); !errors.Is(err, ErrBadRole) {
		t.Fatalf("Verify(rear) = %v, want ErrBadRole", err)
	}
	if err := openStore(t, t.TempDir()).Verify(Primary); !errors.Is(err, ErrNoActive) {
		t.Fatalf("Verify with no active = %v, want ErrNoActive", err)
	}
}

// TestTableRoundTrip: a table encodes and decodes to itself, and the
// encoding carries the format.
func TestTableRoundTrip(t *testing.T) {
	s := openStore(t, t.TempDir())
	populate(t, s)
	must(t, s.Rollback(Primary, "test"))
	tb := s.Table()
	b, err := tb.Encode()
	must(t, err)
	back, err := DecodeTable(b)
	must(t, err)
	if encoded(t, back) != string(b) {
		t.Fatalf("decode(encode(t)) differs:\n%s\nwant\n%s", encoded(t, back), b)
	}
	if !strings.Contains(string(b), `"format": 1`) || !strings.Contains(string(b), `"dir": "primary/slot-1"`) {
		t.Fatalf("encoding lacks the format or a slot directory:\n%s", b)
	}
}

// TestConcurrentUse (run with -race): lookups on one role while another
// role is installed, promoted and committed over and over see a
// consistent table and files that exist.
func TestConcurrentUse(t *testing.T) {
	s := populated(t)
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(done)
		for n := uint64(2); n < 8; n++ {
			v, src := testVersion("shadow", n)
			for _, err := range []error{s.Install(Shadow, v, src, InstallOptions{}), s.Promote(Shadow), s.Commit(Shadow)} {
				if err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		p, err := s.ActivePath(Primary, "model.onnx")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
		if tb := s.Table(); tb.Roles[Shadow].Active == nil {
			t.Fatal("shadow lost its active slot during the changes")
		}
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	expectSlots(t, s, Shadow, "shadow v7 committed", "-", "shadow v6 committed")
	checkActiveFiles(t, s, Shadow)
}

// TestVacateFirstDeployment: the rollback of a role's first deployment
// (no previous slot) quarantines the version, leaves the role without an
// active slot (the configured model serves again) and removes the slot's
// directory; the candidate stays, the floor is not raised, the
// quarantined version is refused by Install, and a reopened store reads
// the same table.
func TestVacateFirstDeployment(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	install(t, s, Primary, "pilot", 1)
	must(t, s.Promote(Primary))
	install(t, s, Primary, "pilot", 2)
	expectSlots(t, s, Primary, "pilot v1 promoted", "pilot v2 staged", "-")
	activeDir := s.Table().Roles[Primary].Active.Dir

	must(t, s.Vacate(Primary, "health gate failed"))
	expectSlots(t, s, Primary, "-", "pilot v2 staged", "-")
	if _, err := s.ActivePath(Primary, "model.onnx"); !errors.Is(err, ErrNoActive) {
		t.Fatalf("ActivePath after Vacate: %v, want ErrNoActive", err)
	}
	q := s.Table().Quarantine
	if len(q) != 1 || q[0].Name != "pilot" || q[0].Version != 1 || q[0].Reason != "health gate failed" {
		t.Fatalf("quarantine after Vacate = %+v", q)
	}
	if f := s.Table().Floors["pilot"]; f != 0 {
		t.Fatalf("floor after vacating an uncommitted version = %d, want 0", f)
	}
	if _, err := os.Stat(filepath.Join(dir, activeDir)); !os.IsNotExist(err) {
		t.Fatalf("the vacated slot directory %s is still there: %v", activeDir, err)
	}
	v, src := testVersion("pilot", 1)
	if err := s.Install(Primary, v, src, InstallOptions{}); !errors.Is(err, ErrQuarantined) {
		t.Fatalf("installing the vacated version again: %v, want ErrQuarantined", err)
	}
	again := openStore(t, dir)
	if encoded(t, again.Table()) != encoded(t, s.Table()) {
		t.Fatalf("reopened table differs:\n%s\nwant\n%s", encoded(t, again.Table()), encoded(t, s.Table()))
	}
}
