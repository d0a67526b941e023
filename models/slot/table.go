package slot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// TableName is the slot table's file name in the store's directory; a
// table being written is TableName+".tmp" until it is renamed over it.
const TableName = "slots.json"

// TableFormat is the table format this package writes and reads.
const TableFormat = 1

// Role is the part a model plays in the inference ladder.
type Role string

// The roles a slot store keeps slots for.
const (
	Primary  Role = "primary"
	Shadow   Role = "shadow"
	Degraded Role = "degraded"
)

// Roles lists every role in ladder order.
var Roles = []Role{Primary, Shadow, Degraded}

func (r Role) valid() bool { return r == Primary || r == Shadow || r == Degraded }

func checkRole(r Role) error {
	if !r.valid() {
		return fmt.Errorf("%w %q: want primary, shadow or degraded", ErrBadRole, string(r))
	}
	return nil
}

// State is how far an installed version has come, as far as slots know.
type State string

// The states of a slot.
const (
	// Staged: installed as the candidate, not yet tried.
	Staged State = "staged"
	// Trial: the candidate runs beside the active model (StartTrial).
	Trial State = "trial"
	// Promoted: the active model, not yet through its health gate.
	Promoted State = "promoted"
	// Committed: the active model passed its health gate (Commit); the
	// previous slot keeps the state its version had when it was active.
	Committed State = "committed"
)

func (s State) valid() bool {
	return s == Staged || s == Trial || s == Promoted || s == Committed
}

// File is one file of a model version, as its bundle lists it.
type File struct {
	// Path is slash-separated and relative to the slot, as io/fs wants it
	// ("model.onnx", "meta/contract.json").
	Path string `json:"path"`
	// SHA256 is the file's SHA-256, 64 lowercase hex digits.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Version is one installable model version: what Install is given (from a
// verified bundle) and what a slot records.
type Version struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	// Hash identifies the bundle the version came from: 64 lowercase hex
	// digits (a SHA-256). Quarantine matches on it with Name and Version.
	Hash  string `json:"hash"`
	Files []File `json:"files"`
}

// Slot is one slot directory and the version installed in it.
type Slot struct {
	// Dir is the slot's directory relative to the store's, slash-separated:
	// "<role>/slot-<n>".
	Dir   string  `json:"dir"`
	Model Version `json:"model"`
	State State   `json:"state"`
}

// RoleSlots are one role's slots; a nil slot is empty.
type RoleSlots struct {
	Active    *Slot `json:"active,omitempty"`
	Candidate *Slot `json:"candidate,omitempty"`
	Previous  *Slot `json:"previous,omitempty"`
}

// Quarantined is a version that failed (a trial, a health gate, a
// command): Install refuses it unless InstallOptions.ForceQuarantined.
type Quarantined struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	Hash    string `json:"hash"`
	Reason  string `json:"reason"`
}

// Table is the slot table: which directory holds which slot of each role,
// the anti-rollback floors and the quarantine. It is what slots.json
// holds, and what the daemon may copy into its store's state keyspace.
type Table struct {
	Format int `json:"format"`
	// NextSlot numbers the next slot directory; every directory the
	// table names has a lower number.
	NextSlot uint64              `json:"next_slot"`
	Roles    map[Role]*RoleSlots `json:"roles"`
	// Floors is the anti-rollback floor per model name: the highest
	// committed version. Install refuses versions at or below it.
	Floors     map[string]uint64 `json:"floors"`
	Quarantine []Quarantined     `json:"quarantine"`
}

// NewTable returns an empty table of the current format.
func NewTable() Table {
	return Table{Format: TableFormat, NextSlot: 1, Roles: map[Role]*RoleSlots{}, Floors: map[string]uint64{}, Quarantine: []Quarantined{}}
}

// Encode returns the table as indented JSON, after checking it as
// DecodeTable would.
func (t Table) Encode() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DecodeTable parses and checks a table; unknown fields and formats are
// refused.
func DecodeTable(b []byte) (Table, error) {
	var t Table
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil {
		return Table{}, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	if t.Roles == nil {
		t.Roles = map[Role]*RoleSlots{}
	}
	if t.Floors == nil {
		t.Floors = map[string]uint64{}
	}
	if t.Quarantine == nil {
		t.Quarantine = []Quarantined{}
	}
	if err := t.Validate(); err != nil {
		return Table{}, err
	}
	return t, nil
}

// Validate checks the table's invariants: its format, known roles, slot
// directories inside their role's directory, numbered below NextSlot and
// used once, and valid versions.
func (t Table) Validate() error {
	if t.Format != TableFormat {
		return fmt.Errorf("%w: format %d, this build reads format %d", ErrBadTable, t.Format, TableFormat)
	}
	seen := map[string]bool{}
	for role, rs := range t.Roles {
		if err := checkRole(role); err != nil {
			return fmt.Errorf("%w: roles: %v", ErrBadTable, err)
		}
		if rs == nil {
			return fmt.Errorf("%w: roles.%s is null", ErrBadTable, role)
		}
		for _, s := range []struct {
			which string
			slot  *Slot
		}{{"active", rs.Active}, {"candidate", rs.Candidate}, {"previous", rs.Previous}} {
			if s.slot == nil {
				continue
			}
			where := fmt.Sprintf("roles.%s.%s", role, s.which)
			if err := t.checkSlot(role, s.slot, seen); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrBadTable, where, err)
			}
		}
	}
	for name, floor := range t.Floors {
		if err := checkName(name); err != nil || floor == 0 {
			return fmt.Errorf("%w: floors: %q: %d: want a model name and a version above 0", ErrBadTable, name, floor)
		}
	}
	for i, q := range t.Quarantine {
		if err := checkIdentity(q.Name, q.Version, q.Hash); err != nil {
			return fmt.Errorf("%w: quarantine[%d]: %v", ErrBadTable, i, err)
		}
	}
	return nil
}

func (t Table) checkSlot(role Role, s *Slot, seen map[string]bool) error {
	n, ok := slotNumber(role, s.Dir)
	if !ok {
		return fmt.Errorf("dir %q: want %s/slot-<n>", s.Dir, role)
	}
	if n >= t.NextSlot {
		return fmt.Errorf("dir %q: numbered at or above next_slot %d", s.Dir, t.NextSlot)
	}
	if seen[s.Dir] {
		return fmt.Errorf("dir %q: named by two slots", s.Dir)
	}
	seen[s.Dir] = true
	if !s.State.valid() {
		return fmt.Errorf("state %q: want staged, trial, promoted or committed", s.State)
	}
	return checkVersion(s.Model)
}

// slotDir is the directory, relative to the store's, of slot number n.
func slotDir(role Role, n uint64) string {
	return string(role) + "/slot-" + strconv.FormatUint(n, 10)
}

// slotNumber parses a directory made by slotDir for role.
func slotNumber(role Role, dir string) (uint64, bool) {
	rest, ok := strings.CutPrefix(dir, string(role)+"/slot-")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil && n > 0
}

// checkVersion is what Install asks of a version before it touches disk.
func checkVersion(v Version) error {
	if err := checkIdentity(v.Name, v.Version, v.Hash); err != nil {
		return err
	}
	if len(v.Files) == 0 {
		return fmt.Errorf("%w: files: none listed", ErrBadVersion)
	}
	paths := map[string]bool{}
	for i, f := range v.Files {
		if !fs.ValidPath(f.Path) || f.Path == "." || strings.ContainsRune(f.Path, '\\') {
			return fmt.Errorf("%w: files[%d].path %q: want a relative slash-separated path without . or .. elements", ErrBadVersion, i, f.Path)
		}
		if paths[f.Path] {
			return fmt.Errorf("%w: files[%d].path %q: listed twice", ErrBadVersion, i, f.Path)
		}
		paths[f.Path] = true
		if !isHex64(f.SHA256) {
			return fmt.Errorf("%w: files[%d] (%s): sha256 %q: want 64 lowercase hex digits", ErrBadVersion, i, f.Path, f.SHA256)
		}
		if f.Size < 0 {
			return fmt.Errorf("%w: files[%d] (%s): size %d is negative", ErrBadVersion, i, f.Path, f.Size)
		}
	}
	// A file may not sit where another needs a directory ("a" and "a/b").
	for p := range paths {
		for dir := p; strings.Contains(dir, "/"); {
			dir = dir[:strings.LastIndexByte(dir, '/')]
			if paths[dir] {
				return fmt.Errorf("%w: files: %q is listed as a file and as the directory of %q", ErrBadVersion, dir, p)
			}
		}
	}
	return nil
}

func checkIdentity(name string, version uint64, hash string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if version == 0 {
		return fmt.Errorf("%w: %s: version 0: versions start at 1", ErrBadVersion, name)
	}
	if !isHex64(hash) {
		return fmt.Errorf("%w: %s v%d: hash %q: want 64 lowercase hex digits", ErrBadVersion, name, version, hash)
	}
	return nil
}

func checkName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: name %q: want 1 to 128 characters", ErrBadVersion, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: name %q: want letters, digits, '.', '_' or '-'", ErrBadVersion, name)
		}
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// clone returns a deep copy, so a method can build the next table without
// touching the current one until the switch is on disk.
func (t Table) clone() Table {
	c := t
	c.Roles = make(map[Role]*RoleSlots, len(t.Roles))
	for r, rs := range t.Roles {
		n := RoleSlots{Active: rs.Active.clone(), Candidate: rs.Candidate.clone(), Previous: rs.Previous.clone()}
		c.Roles[r] = &n
	}
	c.Floors = make(map[string]uint64, len(t.Floors))
	for k, v := range t.Floors {
		c.Floors[k] = v
	}
	c.Quarantine = append([]Quarantined{}, t.Quarantine...)
	return c
}

func (s *Slot) clone() *Slot {
	if s == nil {
		return nil
	}
	c := *s
	c.Model.Files = append([]File(nil), s.Model.Files...)
	return &c
}

// role returns the role's slots, adding an empty entry when it has none.
func (t Table) role(r Role) *RoleSlots {
	rs := t.Roles[r]
	if rs == nil {
		rs = &RoleSlots{}
		t.Roles[r] = rs
	}
	return rs
}

// quarantined reports the index of the quarantine entry for a version, or -1.
func (t Table) quarantined(name string, version uint64, hash string) int {
	for i, q := range t.Quarantine {
		if q.Name == name && q.Version == version && q.Hash == hash {
			return i
		}
	}
	return -1
}

// Quarantined returns the quarantine entry of a version (name, version
// and bundle hash), if it has one.
func (t Table) Quarantined(name string, version uint64, hash string) (Quarantined, bool) {
	if i := t.quarantined(name, version, hash); i >= 0 {
		return t.Quarantine[i], true
	}
	return Quarantined{}, false
}

// quarantine adds a version to the quarantine, once.
func (t *Table) quarantine(v Version, reason string) {
	if t.quarantined(v.Name, v.Version, v.Hash) >= 0 {
		return
	}
	t.Quarantine = append(t.Quarantine, Quarantined{Name: v.Name, Version: v.Version, Hash: v.Hash, Reason: reason})
}
