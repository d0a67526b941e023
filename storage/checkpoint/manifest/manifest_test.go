package manifest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func valid() *Manifest {
	h := strings.Repeat("ab", 32)
	return &Manifest{Format: FormatVersion, Vehicle: "veh-1", StoreID: "00000000000000aa", ID: "000002-incremental",
		Seq: 2, Kind: Incremental, Base: "000001-full", SHA256: h, Bytes: 30,
		Chunks: []Chunk{{Name: "chunk-000000", Bytes: 10, SHA256: h}, {Name: "chunk-000001", Bytes: 20, SHA256: h}}}
}

// TestParseRefuses: every field Parse checks, broken one at a time, is
// refused with an error that names the checkpoint and the field.
func TestParseRefuses(t *testing.T) {
	b, _ := json.Marshal(valid())
	if _, err := Parse(b, "x"); err != nil {
		t.Fatalf("a valid manifest: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Manifest)
		want   string
	}{
		{"format", func(m *Manifest) { m.Format = 2 }, "format 2"},
		{"id", func(m *Manifest) { m.ID = "../etc" }, "not <seq>-<kind>"},
		{"kind", func(m *Manifest) { m.Kind = "weekly" }, "kind"},
		{"seq", func(m *Manifest) { m.Seq = 3 }, "make id"},
		{"full with base", func(m *Manifest) { m.Kind, m.ID = Full, "000002-full" }, "a full with base"},
		{"base", func(m *Manifest) { m.Base = "x/y" }, "base"},
		{"store", func(m *Manifest) { m.StoreID = "zz" }, "store id"},
		{"stream hash", func(m *Manifest) { m.SHA256 = "00" }, "stream hash"},
		{"chunk name", func(m *Manifest) { m.Chunks[1].Name = "../../x" }, "chunk 1 is named"},
		{"chunk size", func(m *Manifest) { m.Chunks[0].Bytes = MaxChunkBytes + 1 }, "chunk-000000"},
		{"chunk hash", func(m *Manifest) { m.Chunks[1].SHA256 = "zz" }, "chunk-000001"},
		{"total", func(m *Manifest) { m.Bytes = 31 }, "chunks hold 30 bytes"},
	} {
		m := valid()
		tc.mutate(m)
		b, _ := json.Marshal(m)
		_, err := Parse(b, "x")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := Parse([]byte("{"), "000001-full"); err == nil || !strings.Contains(err.Error(), "000001-full") {
		t.Errorf("bad JSON: %v", err)
	}
}

func cp(seq uint64, k Kind, base string, since, snap uint64) *Manifest {
	return &Manifest{Vehicle: "veh-1", StoreID: "00000000000000aa", ID: ID(seq, k), Seq: seq, Kind: k, Base: base, Since: since, SnapshotTS: snap}
}

// TestChainAndNeeded: a chain is followed back to its full; retention
// keeps every base a kept checkpoint needs and nothing else.
func TestChainAndNeeded(t *testing.T) {
	f := cp(1, Full, "", 0, 10)
	i2 := cp(2, Incremental, f.ID, 10, 20)
	d3 := cp(3, Differential, f.ID, 10, 30)
	i4 := cp(4, Incremental, d3.ID, 30, 40)
	f5 := cp(5, Full, "", 0, 50)
	ms := []*Manifest{i4, f, d3, i2, f5}
	ch, err := Chain(ms, i4.ID, "veh-1", "here")
	if err != nil || len(ch) != 3 || ch[0] != f || ch[1] != d3 || ch[2] != i4 {
		t.Fatalf("chain to %s: %v %v", i4.ID, ids(ch), err)
	}
	if _, err := Chain([]*Manifest{f, i4}, "", "", "here"); !errors.Is(err, ErrChain) || !strings.Contains(err.Error(), "gap") {
		t.Errorf("a gap: %v", err)
	}
	need := Needed(ms, []string{i4.ID, f5.ID})
	for _, id := range []string{f.ID, d3.ID, i4.ID, f5.ID} {
		if !need[id] {
			t.Errorf("%s not kept, a kept checkpoint needs it", id)
		}
	}
	if need[i2.ID] {
		t.Errorf("%s kept, nothing kept needs it", i2.ID)
	}
}

func ids(ms []*Manifest) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.ID)
	}
	return s
}
