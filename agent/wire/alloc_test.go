package wire

import (
	"testing"
)

// TestDecodeEncodeAllocs checks the server's steady state: decoding an
// INFER_REQUEST with one 1×3×66×200 float32 frame into a reused request, and
// encoding a response into a reused buffer, allocate nothing.
func TestDecodeEncodeAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are skewed by -short's instrumentation-free runs")
	}
	in := &InferRequest{FrameSeq: 1, BudgetMicros: 20000, Tensors: []Tensor{frameTensor()}}
	frame, err := AppendFrame(nil, 42, in)
	if err != nil {
		t.Fatal(err)
	}
	var (
		h   Header
		req InferRequest
	)
	decode := func() {
		payload, _, err := SplitFrame(frame, &h, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := req.DecodePayload(payload); err != nil {
			t.Fatal(err)
		}
		if len(req.Tensor("frame").Float32s()) != 3*66*200 {
			t.Fatal("wrong frame")
		}
	}
	if n := testing.AllocsPerRun(100, decode); n != 0 {
		t.Errorf("decode of an INFER_REQUEST: %v allocations, want 0", n)
	}

	var resp InferResponse
	out := make([]byte, 0, 512)
	controls := []float32{0.1, 0.5, 0}
	encode := func() {
		resp.Reset()
		resp.FrameSeq = req.FrameSeq
		resp.SetOK(Primary)
		resp.ModelName, resp.ModelVersion = "pilotnet", "1.0.0"
		resp.Backends[0] = BackendReport{Started: true, Finished: true, Outcome: OutcomeOK, LatencyMicros: 800}
		resp.AddOutput().SetFloat32("controls", []int64{1, 3}, controls)
		var err error
		out, err = AppendFrame(out[:0], h.ID, &resp)
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(100, encode); n != 0 {
		t.Errorf("encode of an INFER_RESPONSE: %v allocations, want 0", n)
	}
	noResult := func() {
		resp.Reset()
		resp.SetNoResult(ReasonDeadlinePassedOnArrival, "deadline passed on arrival")
		var err error
		out, err = AppendFrame(out[:0], h.ID, &resp)
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(100, noResult); n != 0 {
		t.Errorf("encode of a NO_RESULT: %v allocations, want 0", n)
	}
}

func BenchmarkDecodeInferRequest(b *testing.B) {
	frame, _ := AppendFrame(nil, 42, &InferRequest{BudgetMicros: 20000, Tensors: []Tensor{frameTensor()}})
	var (
		h   Header
		req InferRequest
	)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		payload, _, _ := SplitFrame(frame, &h, 0)
		if err := req.DecodePayload(payload); err != nil {
			b.Fatal(err)
		}
	}
}
