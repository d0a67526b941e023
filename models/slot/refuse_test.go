package slot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// refused runs a change that must fail on a populated store and asserts
// its error wraps want and mentions every string in names, and that the
// store's directory and in-memory table are as before.
func refused(t *testing.T, s *Store, want error, names []string, change func() error) {
	t.Helper()
	disk, table := snapshot(t, s.Dir()), encoded(t, s.Table())
	err := change()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not name %q", err, n)
		}
	}
	if got := snapshot(t, s.Dir()); got != disk {
		t.Errorf("the refusal changed the store's directory:\n%s\nwas:\n%s", got, disk)
	}
	if got := encoded(t, s.Table()); got != table {
		t.Errorf("the refusal changed the table:\n%s\nwas:\n%s", got, table)
	}
	if _, err := Open(s.Dir()); err != nil {
		t.Errorf("Open after the refusal: %v", err)
	}
}

func populated(t *testing.T) *Store {
	s := openStore(t, t.TempDir())
	populate(t, s)
	return s
}

// TestRefuseBadRole: every method refuses a role it does not know.
func TestRefuseBadRole(t *testing.T) {
	s := populated(t)
	v, src := testVersion("pilot", 7)
	for name, f := range map[string]func() error{
		"Install":       func() error { return s.Install("rear", v, src, InstallOptions{}) },
		"Promote":       func() error { return s.Promote("rear") },
		"Rollback":      func() error { return s.Rollback("", "x") },
		"Vacate":        func() error { return s.Vacate("rear", "x") },
		"Commit":        func() error { return s.Commit("Primary") },
		"StartTrial":    func() error { return s.StartTrial("rear") },
		"Discard":       func() error { return s.Discard("rear") },
		"Reject":        func() error { return s.Reject("rear", "x") },
		"Slots":         func() error { _, err := s.Slots("rear"); return err },
		"ActivePath":    func() error { _, err := s.ActivePath("rear", "model.onnx"); return err },
		"CandidatePath": func() error { _, err := s.CandidatePath("rear", "model.onnx"); return err },
	} {
		t.Run(name, func(t *testing.T) { refused(t, s, ErrBadRole, []string{"want primary, shadow or degraded"}, f) })
	}
}

// TestRefuseBadVersion: Install refuses a malformed version before it
// touches the disk.
func TestRefuseBadVersion(t *testing.T) {
	s := populated(t)
	good, src := testVersion("pilot", 7)
	for _, tc := range []struct {
		name  string
		edit  func(v *Version)
		names string
	}{
		{"empty name", func(v *Version) { v.Name = "" }, "name"},
		{"name with a slash", func(v *Version) { v.Name = "a/b" }, "a/b"},
		{"version 0", func(v *Version) { v.Version = 0 }, "version 0"},
		{"short hash", func(v *Version) { v.Hash = "abc" }, "hash"},
		{"upper-case hash", func(v *Version) { v.Hash = strings.ToUpper(v.Hash) }, "lowercase"},
		{"no files", func(v *Version) { v.Files = nil }, "none listed"},
		{"parent path", func(v *Version) { v.Files[0].Path = "../model.onnx" }, "../model.onnx"},
		{"absolute path", func(v *Version) { v.Files[0].Path = "/etc/passwd" }, "/etc/passwd"},
		{"path listed twice", func(v *Version) { v.Files[1].Path = v.Files[0].Path }, "listed twice"},
		{"bad sha256", func(v *Version) { v.Files[1].SHA256 = "zz" }, "meta/contract.json"},
		{"negative size", func(v *Version) { v.Files[0].Size = -1 }, "negative"},
		{"file and directory", func(v *Version) { v.Files[0].Path = "meta" }, `"meta" is listed as a file and as the directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := good
			v.Files = append([]File(nil), good.Files...)
			tc.edit(&v)
			refused(t, s, ErrBadVersion, []string{tc.names}, func() error { return s.Install(Primary, v, src, InstallOptions{}) })
		})
	}
}

// TestRefuseBadSource: a source file with the wrong bytes, too few or too
// many, or missing, is refused during the copy; the candidate the role had
// stays, and the new slot directory is removed.
func TestRefuseBadSource(t *testing.T) {
	s := populated(t)
	v, src := testVersion("pilot", 7)
	flipped := append([]byte(nil), src["model.onnx"].Data...)
	flipped[len(flipped)-1] ^= 0x80
	for _, tc := range []struct {
		name  string
		data  []byte // model.onnx's bytes in the source; nil: missing
		want  error
		names []string
	}{
		{"flipped bit", flipped, ErrHashMismatch, []string{"model.onnx", v.Files[0].SHA256, "primary pilot v7"}},
		{"short", flipped[:100], ErrSizeMismatch, []string{"model.onnx", "100 bytes"}},
		{"long", append(append([]byte(nil), src["model.onnx"].Data...), 0), ErrSizeMismatch, []string{"model.onnx", "longer"}},
		{"missing", nil, ErrMissingFile, []string{"model.onnx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := fstest.MapFS{"meta/contract.json": src["meta/contract.json"]}
			if tc.data != nil {
				bad["model.onnx"] = &fstest.MapFile{Data: tc.data}
			}
			// The contract comes first so that a file was already
			// written when the copy fails.
			w := v
			w.Files = []File{v.Files[1], v.Files[0]}
			refused(t, s, tc.want, tc.names, func() error { return s.Install(Primary, w, bad, InstallOptions{}) })
		})
	}
}

// TestRefuseFloorAndQuarantine: Install refuses a version at or below the
// floor and a quarantined one, saying how to force it.
func TestRefuseFloorAndQuarantine(t *testing.T) {
	s := populated(t)
	v1, src1 := testVersion("pilot", 1)
	refused(t, s, ErrBelowFloor, []string{"pilot v1", "committed v1", "signed command"}, func() error {
		return s.Install(Primary, v1, src1, InstallOptions{ForceQuarantined: true})
	})
	must(t, s.Rollback(Primary, "health gate failed"))
	v2, src2 := testVersion("pilot", 2)
	refused(t, s, ErrQuarantined, []string{"pilot v2", v2.Hash, "health gate failed"}, func() error {
		return s.Install(Primary, v2, src2, InstallOptions{ForceBelowFloor: true})
	})
	// Another bundle of the same version is not the quarantined one.
	v2.Hash = hexSum([]byte("another bundle"))
	must(t, s.Install(Primary, v2, src2, InstallOptions{}))
}

// TestRefuseFullDisk: the disk fills halfway through a model file, or
// while the new table is written: Install fails with ENOSPC naming the
// file, the new slot directory is removed, and the table and every slot
// are as before.
func TestRefuseFullDisk(t *testing.T) {
	v, src := testVersion("pilot", 7)
	var total int64
	for _, f := range v.Files {
		total += f.Size
	}
	for _, tc := range []struct {
		name string
		left int64
		file string
	}{
		{"mid-file", modelSize / 3, "model.onnx"},
		{"table", total + 10, TableName + ".tmp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := populated(t)
			refused(t, s, syscall.ENOSPC, []string{tc.file, "install primary pilot v7"}, func() error {
				fillDiskAfter(t, tc.left)
				return s.Install(Primary, v, src, InstallOptions{})
			})
			checkActiveFiles(t, s, Primary)
		})
	}
}

// TestRefuseMissingSlots: Promote without a candidate, Rollback without a
// previous slot, Commit and Vacate without an active one, Vacate with a
// previous slot (Rollback's case), and StartTrial, Discard and Reject
// without a candidate.
func TestRefuseMissingSlots(t *testing.T) {
	s := populated(t)
	must(t, s.Discard(Primary))
	for _, tc := range []struct {
		name   string
		want   error
		change func() error
	}{
		{"Promote", ErrNoCandidate, func() error { return s.Promote(Primary) }},
		{"StartTrial", ErrNoCandidate, func() error { return s.StartTrial(Primary) }},
		{"Discard", ErrNoCandidate, func() error { return s.Discard(Primary) }},
		{"Reject", ErrNoCandidate, func() error { return s.Reject(Primary, "x") }},
		{"Rollback", ErrNoPrevious, func() error { return s.Rollback(Shadow, "x") }},
		{"Vacate", ErrHasPrevious, func() error { return s.Vacate(Primary, "x") }},
		{"CandidatePath", ErrNoCandidate, func() error { _, err := s.CandidatePath(Primary, "model.onnx"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, s, tc.want, nil, tc.change) })
	}
	empty := openStore(t, t.TempDir())
	refused(t, empty, ErrNoActive, []string{"commit primary"}, func() error { return empty.Commit(Primary) })
	refused(t, empty, ErrNoActive, []string{"vacate primary"}, func() error { return empty.Vacate(Primary, "x") })
	refused(t, empty, ErrNoActive, []string{"primary active"}, func() error { _, err := empty.ActivePath(Primary, "model.onnx"); return err })
	refused(t, s, ErrNotInSlot, []string{"weights.bin", "pilot v2"}, func() error { _, err := s.ActivePath(Primary, "weights.bin"); return err })
}

// TestRefuseDamagedTarget: Promote refuses a candidate, and Rollback a
// previous slot, whose files were removed behind the store's back.
func TestRefuseDamagedTarget(t *testing.T) {
	s := populated(t)
	p, err := s.CandidatePath(Primary, "meta/contract.json")
	must(t, err)
	must(t, os.Remove(p))
	refused(t, s, ErrMissingFile, []string{p, "candidate"}, func() error { return s.Promote(Primary) })
	rs, _ := s.Slots(Primary)
	prev := filepath.Join(s.Dir(), filepath.FromSlash(rs.Previous.Dir), "model.onnx")
	must(t, os.Truncate(prev, 1))
	refused(t, s, ErrSizeMismatch, []string{prev, "previous"}, func() error { return s.Rollback(Primary, "x") })
}

// TestRefuseBadTable: Open refuses a table it cannot trust, naming the
// file, and removes nothing.
func TestRefuseBadTable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(b string) string
		names string
	}{
		{"not JSON", func(string) string { return "{" }, "unexpected EOF"},
		{"other format", func(b string) string { return strings.Replace(b, `"format": 1`, `"format": 2`, 1) }, "format 2"},
		{"unknown field", func(b string) string { return strings.Replace(b, `"format": 1`, `"format": 1, "extra": 0`, 1) }, "extra"},
		{"dir outside its role", func(b string) string { return strings.Replace(b, `"primary/slot-1"`, `"primary/../../etc"`, 1) }, "primary/../../etc"},
		{"dir of another role", func(b string) string { return strings.Replace(b, `"primary/slot-1"`, `"shadow/slot-1"`, 1) }, "shadow/slot-1"},
		{"dir above next_slot", func(b string) string { return strings.Replace(b, `"primary/slot-1"`, `"primary/slot-99"`, 1) }, "next_slot"},
		{"unknown role", func(b string) string { return strings.Replace(b, `"degraded": {`, `"rear": {`, 1) }, "rear"},
		{"bad state", func(b string) string { return strings.Replace(b, `"state": "staged"`, `"state": "ready"`, 1) }, "ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			populate(t, openStore(t, dir))
			name := filepath.Join(dir, TableName)
			b, err := os.ReadFile(name)
			must(t, err)
			bad := tc.edit(string(b))
			if bad == string(b) {
				t.Fatal("the edit did not change the table")
			}
			must(t, os.WriteFile(name, []byte(bad), 0o644))
			before := snapshot(t, dir)
			_, err = Open(dir)
			if !errors.Is(err, ErrBadTable) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("Open = %v, want ErrBadTable naming %s and %q", err, name, tc.names)
			}
			if snapshot(t, dir) != before {
				t.Fatal("Open of a bad table changed the directory")
			}
		})
	}
}

// TestRefuseLostTable: slot directories without a table mean a lost
// table, not a first install cut short: Open refuses and removes nothing.
func TestRefuseLostTable(t *testing.T) {
	dir := t.TempDir()
	populate(t, openStore(t, dir))
	must(t, os.Remove(filepath.Join(dir, TableName)))
	before := snapshot(t, dir)
	_, err := Open(dir)
	if !errors.Is(err, ErrBadTable) || !strings.Contains(err.Error(), "is missing") || !strings.Contains(err.Error(), filepath.Join(dir, "primary")) {
		t.Fatalf("Open without a table = %v, want ErrBadTable naming the table and primary", err)
	}
	if snapshot(t, dir) != before {
		t.Fatal("Open without a table changed the directory")
	}
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}
