package wire

import (
	"bytes"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"
)

// docExample returns the bytes of the hex block that follows the line
// starting with title in docs/protocol.md. Each line of a block is a label
// or not, then hex bytes (and "|" separators) up to the first other word.
func docExample(t *testing.T, title string) []byte {
	t.Helper()
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, title) {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("no example %q in docs/protocol.md", title)
	}
	for start < len(lines) && lines[start] != "```" {
		start++
	}
	var out []byte
	for _, l := range lines[start+1:] {
		if l == "```" {
			return out
		}
		fields := strings.Fields(l)
		for i, f := range fields {
			if f == "|" {
				continue
			}
			b, err := hex.DecodeString(f)
			if err != nil || len(b) != 1 {
				if i == 0 {
					continue // a label
				}
				break
			}
			out = append(out, b[0])
		}
	}
	t.Fatalf("example %q: unterminated block", title)
	return nil
}

// TestDocExamples keeps the examples of docs/protocol.md true: their bytes
// decode to the messages the text describes, and encoding those messages
// gives the same bytes.
func TestDocExamples(t *testing.T) {
	cases := []struct {
		title string
		id    uint64
		msg   Decoder
	}{
		{"**INFER_REQUEST**", 1, &InferRequest{FrameSeq: 7, BudgetMicros: 20000,
			Tensors: []Tensor{{Name: "x", DType: Float32, Shape: []int64{1, 3}, Data: float32Bytes(1, 2, 3)}}}},
		{"**INFER_RESPONSE**", 1, &InferResponse{Status: StatusOK, ServedBy: Primary, TotalMicros: 850, FrameSeq: 7,
			Backends: [NumBackends]BackendReport{
				{Started: true, Finished: true, Outcome: OutcomeOK, LatencyMicros: 812},
				{Started: true, Outcome: OutcomeRunning, LatencyMicros: 815},
			},
			ModelName: "pilotnet", ModelVersion: "1.0.0",
			Outputs: []Tensor{{Name: "y", DType: Float32, Shape: []int64{1, 1}, Data: float32Bytes(0.25)}}}},
		{"**ERROR**", 9, &ErrorFrame{Code: CodeTooManyInFlight, Message: "too many in flight: 8"}},
	}
	for _, tc := range cases {
		doc := docExample(t, tc.title)
		want, err := AppendFrame(nil, tc.id, tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(doc, want) {
			t.Errorf("%s: the document has\n%s\nthe encoder gives\n%s", tc.title, hex.Dump(doc), hex.Dump(want))
			continue
		}
		var h Header
		payload, rest, err := SplitFrame(doc, &h, 0)
		if err != nil || len(rest) != 0 {
			t.Fatalf("%s: %v, %d bytes left", tc.title, err, len(rest))
		}
		got := decoderFor(h.Type)
		if err := got.DecodePayload(payload); err != nil {
			t.Fatalf("%s: %v", tc.title, err)
		}
		if !reflect.DeepEqual(canon(got), canon(tc.msg)) {
			t.Errorf("%s: decodes to %+v", tc.title, canon(got))
		}
	}
}
