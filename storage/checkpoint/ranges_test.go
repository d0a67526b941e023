package checkpoint

import (
	"slices"
	"testing"
)

func TestRanges(t *testing.T) {
	if got := toRanges([]uint64{5, 3, 4, 9, 1, 10, 4}); !slices.Equal(got, []Range{{1, 1}, {3, 5}, {9, 10}}) {
		t.Errorf("toRanges = %v", got)
	}
	if got := union([]Range{{1, 5}, {10, 12}}, []Range{{4, 8}, {13, 13}, {20, 21}}); !slices.Equal(got, []Range{{1, 8}, {10, 13}, {20, 21}}) {
		t.Errorf("union = %v", got)
	}
	if got := subtract([]Range{{1, 5}, {7, 7}, {9, 12}}, []uint64{1, 3, 7, 12}); !slices.Equal(got, []Range{{2, 2}, {4, 5}, {9, 11}}) {
		t.Errorf("subtract = %v", got)
	}
	base := []StreamInfo{{Name: "health", ID: 3, Count: 10, Ranges: []Range{{1, 10}}}}
	got := merge(base, map[uint8]string{3: "health", 1: "inference"}, map[uint8]*seqSet{
		3: {added: []uint64{11, 12, 10}, deleted: []uint64{2}},
	})
	want := []StreamInfo{
		{Name: "inference", ID: 1, Ranges: []Range{}},
		{Name: "health", ID: 3, Count: 11, Ranges: []Range{{1, 1}, {3, 12}}},
	}
	if len(got) != len(want) {
		t.Fatalf("merge = %+v", got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Count != want[i].Count || !slices.Equal(got[i].Ranges, want[i].Ranges) {
			t.Errorf("merge[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}
