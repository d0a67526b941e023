package checkpoint

import (
	"slices"
	"testing"
)

func TestRanges(t *testing.T) {
	if got := toRanges([]uint64{5, 3, 4, 9, 1, 10, 4}); !slices.Equal(got, []Range{{First: 1, Last: 1}, {First: 3, Last: 5}, {First: 9, Last: 10}}) {
		t.Errorf("toRanges = %v", got)
	}
	if got := union([]Range{{First: 1, Last: 5}, {First: 10, Last: 12}}, []Range{{First: 4, Last: 8}, {First: 13, Last: 13}, {First: 20, Last: 21}}); !slices.Equal(got, []Range{{First: 1, Last: 8}, {First: 10, Last: 13}, {First: 20, Last: 21}}) {
		t.Errorf("union = %v", got)
	}
	if got := subtract([]Range{{First: 1, Last: 5}, {First: 7, Last: 7}, {First: 9, Last: 12}}, []uint64{1, 3, 7, 12}); !slices.Equal(got, []Range{{First: 2, Last: 2}, {First: 4, Last: 5}, {First: 9, Last: 11}}) {
		t.Errorf("subtract = %v", got)
	}
	base := []StreamInfo{{Name: "health", ID: 3, Count: 10, Ranges: []Range{{First: 1, Last: 10}}}}
	got := merge(base, map[uint8]string{3: "health", 1: "inference"}, map[uint8]*seqSet{
		3: {added: []Range{{First: 11, Last: 12}, {First: 10, Last: 10}}, deleted: []uint64{2}},
	})
	want := []StreamInfo{
		{Name: "inference", ID: 1, Ranges: []Range{}},
		{Name: "health", ID: 3, Count: 11, Ranges: []Range{{First: 1, Last: 1}, {First: 3, Last: 12}}},
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
