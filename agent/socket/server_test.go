package socket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/wire"
)

func clientFrame(seq uint64, v float32) *client.InferRequest {
	px := make([]float32, 3*66*200)
	for i := range px {
		px[i] = v
	}
	return &client.InferRequest{FrameSeq: seq, Budget: time.Minute,
		Inputs: []client.Tensor{{Name: "frame", DType: client.Float32, Shape: frameShape, Float32: px}}}
}

func dialClient(t *testing.T, path string) *client.Client {
	t.Helper()
	c, err := client.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientRoundTrip(t *testing.T) {
	h := &toyHandler{drills: true}
	s := startServer(t, h, nil)
	c := dialClient(t, s.path)
	ctx := context.Background()

	resp, err := c.Infer(ctx, clientFrame(41, 0.5))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.OK() || resp.ServedBy != client.Primary || resp.FrameSeq != 41 || resp.Model != "toy" || resp.Version != "1" {
		t.Fatalf("response %+v", resp)
	}
	out := resp.Output("controls")
	if out == nil || len(out.Float32) != 3 || out.Float32[0] != 0.5*3*66*200 || out.Float32[1] != 41 {
		t.Fatalf("controls = %+v", out)
	}
	if b := resp.Backends[0]; !b.Started || !b.Finished || b.Outcome != client.OutcomeOK || b.Latency != 5*time.Microsecond {
		t.Errorf("primary report %+v", b)
	}
	if resp.Total <= 0 || resp.Total > time.Second {
		t.Errorf("total latency %v", resp.Total)
	}

	// A raw byte tensor and a reused response.
	var r2 client.InferResponse
	data := make([]byte, 4*3*66*200)
	req := &client.InferRequest{FrameSeq: 42, Budget: time.Minute, Inputs: []client.Tensor{{Name: "frame", DType: client.Float32, Shape: frameShape, Data: data}}}
	if err := c.InferInto(ctx, req, &r2); err != nil || !r2.OK() || r2.FrameSeq != 42 {
		t.Fatalf("InferInto: %v, %+v", err, r2)
	}

	doc, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(doc, &st); err != nil || st["vehicle_state"] != "driving" {
		t.Fatalf("status %s: %v", doc, err)
	}

	drill := client.ControlRequest{Op: client.OpDrillFault, Backend: client.Primary, FaultKind: "hang", Probability: 0.5}
	var ce *client.ControlError
	if err := c.Control(ctx, drill); !errors.As(err, &ce) || ce.Code != uint16(wire.ControlNotParked) {
		t.Fatalf("drill while driving: %v, want NOT_PARKED", err)
	}
	if err := c.Control(ctx, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	if err := c.Control(ctx, drill); err != nil {
		t.Fatalf("drill while parked: %v", err)
	}
	if err := c.Control(ctx, client.ControlRequest{Op: client.OpDrillFault, Backend: client.Primary, FaultKind: "melt"}); !errors.As(err, &ce) || ce.Code != uint16(wire.ControlInvalidArgument) {
		t.Fatalf("unknown fault kind: %v, want INVALID_ARGUMENT", err)
	}
	if err := c.Control(ctx, client.ControlRequest{Op: 42}); !errors.As(err, &ce) || ce.Code != uint16(wire.ControlUnknownOp) {
		t.Fatalf("unknown op: %v, want UNKNOWN_OP", err)
	}
	if err := c.Control(ctx, client.ControlRequest{Op: client.OpSetLogLevel, Value: client.LogDebug}); !errors.As(err, &ce) || ce.Code != uint16(wire.ControlFailed) || ce.Message != "log level is fixed in this test" {
		t.Fatalf("failing op: %v, want FAILED with the handler's message", err)
	}
	// An op done with a message: OK, and the message reaches the client.
	if msg, err := c.ControlReply(ctx, client.ControlRequest{Op: client.OpCheckpoint, Value: client.CheckpointDifferential}); err != nil || msg != "took a differential checkpoint" {
		t.Fatalf("checkpoint: %q, %v; want OK with the handler's message", msg, err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	got := fmt.Sprint(h.log)
	h.mu.Unlock()
	// Invalid values never reach the handler.
	if want := fmt.Sprintf("[DRILL_FAULT uid=%[1]d SET_VEHICLE_STATE uid=%[1]d DRILL_FAULT uid=%[1]d SET_LOG_LEVEL uid=%[1]d CHECKPOINT uid=%[1]d]", ownUID()); got != want {
		t.Errorf("handler saw %s, want %s", got, want)
	}
	if st := s.Stats(); st.Requests != 10 || st.Connections != 1 || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestPipeliningOutOfOrder sends three requests on one connection and lets
// the handler finish them in the order 3, 1, 2: the answers come in that
// order, each with its own id.
func TestPipeliningOutOfOrder(t *testing.T) {
	entered := make(chan uint64, 3)
	release := map[uint64]chan struct{}{1: make(chan struct{}), 2: make(chan struct{}), 3: make(chan struct{})}
	h := &toyHandler{gate: func(ctx context.Context, seq uint64) {
		entered <- seq
		select {
		case <-release[seq]:
		case <-ctx.Done():
		}
	}}
	s := startServer(t, h, nil)
	r := dialRaw(t, s.path)
	for seq := uint64(1); seq <= 3; seq++ {
		r.sendMsg(100+seq, frameRequest(seq, time.Minute))
	}
	for range 3 {
		recv(t, entered, "the handler to take all three requests at once")
	}
	for _, seq := range []uint64{3, 1, 2} {
		close(release[seq])
		id, resp := r.readInfer()
		if id != 100+seq || resp.FrameSeq != seq || resp.Status != wire.StatusOK {
			t.Fatalf("released %d, got id %d frame %d status %s", seq, id, resp.FrameSeq, resp.Status)
		}
	}
}

// TestClientConcurrentCallers shares one client among goroutines: every
// caller gets its own answer.
func TestClientConcurrentCallers(t *testing.T) {
	s := startServer(t, &toyHandler{}, nil)
	c := dialClient(t, s.path)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 6 {
		wg.Go(func() {
			var resp client.InferResponse
			for i := range 20 {
				seq := uint64(g*1000 + i)
				if err := c.InferInto(context.Background(), clientFrame(seq, 0), &resp); err != nil {
					errs <- err
					return
				}
				if resp.FrameSeq != seq || resp.Output("controls").Float32[1] != float32(seq) {
					errs <- fmt.Errorf("asked for frame %d, got %d", seq, resp.FrameSeq)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestInvalidTensorsAnsweredByHandler(t *testing.T) {
	h := &toyHandler{}
	s := startServer(t, h, nil)
	r := dialRaw(t, s.path)
	cases := []struct {
		name   string
		tensor wire.Tensor
		detail string
	}{
		{"wrong name", wire.Tensor{Name: "image", DType: wire.Float32, Shape: frameShape, Data: make([]byte, 4*3*66*200)},
			`unknown input "image": the model takes "frame"`},
		{"wrong shape", wire.Tensor{Name: "frame", DType: wire.Float32, Shape: []int64{1, 3, 200, 66}, Data: make([]byte, 4*3*66*200)},
			`input "frame": expected float32[1 3 66 200], got float32[1 3 200 66]`},
		{"wrong dtype", wire.Tensor{Name: "frame", DType: wire.Uint8, Shape: frameShape, Data: make([]byte, 3*66*200)},
			`input "frame": expected float32[1 3 66 200], got uint8[1 3 66 200]`},
	}
	for i, tc := range cases {
		r.sendMsg(uint64(i+1), &wire.InferRequest{FrameSeq: 5, BudgetMicros: 1e6, Tensors: []wire.Tensor{tc.tensor}})
		id, resp := r.readInfer()
		if id != uint64(i+1) || resp.Status != wire.StatusNoResult || resp.Reason != wire.ReasonInvalidInput ||
			resp.ServedBy != wire.BackendNone || resp.Detail != tc.detail || len(resp.Outputs) != 0 || resp.FrameSeq != 5 {
			t.Errorf("%s: id %d, response %+v", tc.name, id, resp)
		}
	}
	// The connection is still good.
	r.sendMsg(9, frameRequest(9, time.Minute))
	if _, resp := r.readInfer(); resp.Status != wire.StatusOK {
		t.Errorf("after invalid tensors: %+v", resp)
	}
}

func TestDeadlinePassedOnArrival(t *testing.T) {
	h := &toyHandler{}
	s := startServer(t, h, nil)
	r := dialRaw(t, s.path)

	r.sendMsg(1, frameRequest(1, 0)) // budget 0
	past := frameRequest(2, time.Minute)
	past.DeadlineMonoNS = 1 // long ago on CLOCK_MONOTONIC
	r.sendMsg(2, past)
	for range 2 { // answered concurrently: in either order
		id, resp := r.readInfer()
		if resp.Status != wire.StatusNoResult || resp.Reason != wire.ReasonDeadlinePassedOnArrival ||
			resp.Detail != "deadline passed on arrival" || resp.FrameSeq != id {
			t.Errorf("request %d: %+v", id, resp)
		}
	}
	if n := h.calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times for expired requests", n)
	}
	// Through the client: a budget below 1µs is 0 on the wire.
	c := dialClient(t, s.path)
	req := clientFrame(3, 0)
	req.Budget = 500 * time.Nanosecond
	resp, err := c.Infer(context.Background(), req)
	if err != nil || resp.OK() || resp.Reason != client.ReasonDeadlinePassedOnArrival {
		t.Fatalf("client: %v, %+v", err, resp)
	}
	if st := s.Stats(); st.PassedOnArrival != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestLateAnswerIsNoResult: an OK the handler returns after the deadline
// goes out as NO_RESULT/DEADLINE_EXCEEDED.
func TestLateAnswerIsNoResult(t *testing.T) {
	h := &toyHandler{gate: func(ctx context.Context, seq uint64) {
		// Miss the deadline on purpose: this is the behaviour under test.
		time.Sleep(20 * time.Millisecond)
	}}
	s := startServer(t, h, nil)
	r := dialRaw(t, s.path)
	r.sendMsg(1, frameRequest(1, 5*time.Millisecond))
	_, resp := r.readInfer()
	if resp.Status != wire.StatusNoResult || resp.Reason != wire.ReasonDeadlineExceeded || len(resp.Outputs) != 0 {
		t.Fatalf("late answer: %+v", resp)
	}
	if resp.TotalMicros < 20000 {
		t.Errorf("total %dµs, the handler took 20ms", resp.TotalMicros)
	}
	if st := s.Stats(); st.LateAnswers != 1 {
		t.Errorf("stats %+v", st)
	}
}

type panicky struct{ toyHandler }

func (p *panicky) Infer(ctx context.Context, deadline time.Time, req *wire.InferRequest, resp *wire.InferResponse) {
	if req.FrameSeq == 13 {
		panic("unlucky frame")
	}
	if req.FrameSeq == 14 {
		resp.SetOK(wire.Primary)
		resp.AddOutput().SetRaw("bad", wire.Float32, []int64{2}, []byte{1}) // 1 byte for 2 floats
		return
	}
	p.toyHandler.Infer(ctx, deadline, req, resp)
}

func TestHandlerFaultsAreInternal(t *testing.T) {
	s := startServer(t, &panicky{}, nil)
	r := dialRaw(t, s.path)
	for _, seq := range []uint64{13, 14} {
		r.sendMsg(seq, frameRequest(seq, time.Minute))
		_, resp := r.readInfer()
		if resp.Status != wire.StatusNoResult || resp.Reason != wire.ReasonInternal || resp.FrameSeq != seq {
			t.Errorf("frame %d: %+v", seq, resp)
		}
	}
	r.sendMsg(15, frameRequest(15, time.Minute))
	if _, resp := r.readInfer(); resp.Status != wire.StatusOK {
		t.Errorf("after handler faults: %+v", resp)
	}
}

type failingStatus struct{ toyHandler }

func (*failingStatus) Status(context.Context) ([]byte, error) { return nil, errors.New("no storage") }

func TestStatusFailureIsErrorFrame(t *testing.T) {
	s := startServer(t, &failingStatus{}, nil)
	r := dialRaw(t, s.path)
	r.sendMsg(3, &wire.StatusRequest{})
	id, e := r.readError()
	if id != 3 || e.Code != wire.CodeInternal || e.Close || e.Message != "status: no storage" {
		t.Fatalf("id %d, %+v", id, e)
	}
	r.sendMsg(4, &wire.Ping{})
	if f := r.readFrame(); f.h.Type != wire.TypePong || f.h.ID != 4 {
		t.Fatalf("after the error: %+v", f.h)
	}
}

func TestMicros(t *testing.T) {
	if micros(-time.Second) != 0 || micros(1500*time.Nanosecond) != 1 || micros(time.Duration(math.MaxInt64)) != math.MaxUint32 {
		t.Error("micros does not clamp")
	}
}
