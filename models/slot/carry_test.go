package slot

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// carriedTable is a table from another unit: a higher floor for pilot, a
// floor for a name this store never saw, and two quarantined versions.
func carriedTable() Table {
	t := NewTable()
	t.Floors["pilot"] = 7
	t.Floors["lane"] = 2
	t.Quarantine = append(t.Quarantine,
		Quarantined{Name: "pilot", Version: 8, Hash: strings.Repeat("8", 64), Reason: "health gate failed"},
		Quarantined{Name: "lane", Version: 3, Hash: strings.Repeat("3", 64), Reason: "trial diverged"})
	return t
}

// TestAdopt: a carried table raises floors and adds quarantine entries,
// never lowers a floor or touches the roles' slots, and tells the
// OnChange function once; adopting it again changes nothing and calls
// nothing; a carried table that does not validate is refused and changes
// nothing on disk.
func TestAdopt(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	populate(t, s)
	before := s.Table()
	var seen []Table
	s.SetOnChange(func(tb Table) { seen = append(seen, tb) })

	carried := carriedTable()
	carried.Floors["shadow"] = 1 // this store's own floor (shadow v1 committed)
	changed, err := s.Adopt(carried)
	if err != nil || !changed {
		t.Fatalf("Adopt: changed %v, %v", changed, err)
	}
	got := s.Table()
	if got.Floors["pilot"] != 7 || got.Floors["lane"] != 2 || got.Floors["shadow"] != before.Floors["shadow"] {
		t.Fatalf("floors after Adopt: %v (before %v)", got.Floors, before.Floors)
	}
	for _, q := range carried.Quarantine {
		if got.quarantined(q.Name, q.Version, q.Hash) < 0 {
			t.Errorf("%s v%d not quarantined after Adopt", q.Name, q.Version)
		}
	}
	if rolesJSON(t, got) != rolesJSON(t, before) {
		t.Fatal("Adopt changed the roles' slots")
	}
	if len(seen) != 1 || encoded(t, seen[0]) != encoded(t, got) {
		t.Fatalf("OnChange saw %d tables, want the new one once", len(seen))
	}
	if reopened := openStore(t, dir).Table(); encoded(t, reopened) != encoded(t, got) {
		t.Fatal("the adopted table is not the one on disk")
	}
	v, src := testVersion("pilot", 7)
	if err := s.Install(Primary, v, src, InstallOptions{}); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("install at the adopted floor: %v, want ErrBelowFloor", err)
	}

	lower := NewTable()
	lower.Floors["pilot"] = 1
	if changed, err := s.Adopt(lower); err != nil || changed {
		t.Fatalf("Adopt of a table that knows less: changed %v, %v", changed, err)
	}
	if changed, err := s.Adopt(carried); err != nil || changed || len(seen) != 1 {
		t.Fatalf("Adopt again: changed %v, %v, OnChange calls %d", changed, err, len(seen))
	}

	disk := snapshot(t, dir)
	bad := carriedTable()
	bad.Format = 2
	if _, err := s.Adopt(bad); !errors.Is(err, ErrBadTable) || !strings.Contains(err.Error(), "format 2") {
		t.Fatalf("Adopt of a table of another format: %v", err)
	}
	bad = carriedTable()
	bad.Quarantine[0].Hash = "nothex"
	if _, err := s.Adopt(bad); !errors.Is(err, ErrBadTable) || !strings.Contains(err.Error(), "quarantine[0]") {
		t.Fatalf("Adopt of a bad quarantine entry: %v", err)
	}
	if snapshot(t, dir) != disk || len(seen) != 1 || !slices.Equal(s.Table().Quarantine, got.Quarantine) {
		t.Fatal("a refused Adopt changed the store")
	}
}

func rolesJSON(t *testing.T, tb Table) string {
	t.Helper()
	b, err := json.Marshal(tb.Roles)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
