package wire

import (
	"math"
	"strings"
)

// frameShape is the demo models' input, 1×3×66×200 float32.
var frameShape = []int64{1, 3, 66, 200}

func float32Bytes(v ...float32) []byte {
	var t Tensor
	t.SetFloat32("x", []int64{int64(len(v))}, v)
	return append([]byte(nil), t.Data...)
}

func frameTensor() Tensor {
	v := make([]float32, 3*66*200)
	for i := range v {
		v[i] = float32(i%255) / 255
	}
	return Tensor{Name: "frame", DType: Float32, Shape: frameShape, Data: float32Bytes(v...)}
}

// wireCase is one message of the shared table: encoded, framed, split and
// decoded into a fresh message of the same type, it must come back equal.
type wireCase struct {
	name  string
	id    uint64
	msg   Decoder
	fresh func() Decoder
}

func newInferRequest() Decoder    { return &InferRequest{} }
func newInferResponse() Decoder   { return &InferResponse{} }
func newControlRequest() Decoder  { return &ControlRequest{} }
func newControlResponse() Decoder { return &ControlResponse{} }
func newErrorFrame() Decoder      { return &ErrorFrame{} }

var wireCases = []wireCase{
	{"infer request, frame", 1, &InferRequest{FrameSeq: 7, BudgetMicros: 20000, Tensors: []Tensor{frameTensor()}}, newInferRequest},
	{"infer request, no tensors", 2, &InferRequest{FrameSeq: 1, BudgetMicros: 1}, newInferRequest},
	{"infer request, absolute deadline", 3, &InferRequest{FrameSeq: math.MaxUint64, DeadlineMonoNS: 123456789012, BudgetMicros: math.MaxUint32,
		Tensors: []Tensor{{Name: "x", DType: Float32, Shape: []int64{1, 3}, Data: float32Bytes(1, 2, 3)}}}, newInferRequest},
	{"infer request, every dtype", 4, &InferRequest{Tensors: []Tensor{
		{Name: "u8", DType: Uint8, Shape: []int64{3}, Data: []byte{1, 2, 3}},
		{Name: "i8", DType: Int8, Shape: []int64{1}, Data: []byte{0xff}},
		{Name: "u16", DType: Uint16, Shape: []int64{1}, Data: []byte{1, 2}},
		{Name: "i16", DType: Int16, Shape: []int64{1}, Data: []byte{1, 2}},
		{Name: "i32", DType: Int32, Shape: []int64{1}, Data: []byte{1, 2, 3, 4}},
		{Name: "i64", DType: Int64, Shape: []int64{1}, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Name: "bool", DType: Bool, Shape: []int64{2}, Data: []byte{0, 1}},
		{Name: "f16", DType: Float16, Shape: []int64{1}, Data: []byte{0, 0x3c}},
		{Name: "f64", DType: Float64, Shape: []int64{1}, Data: []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{Name: "u32", DType: Uint32, Shape: []int64{1}, Data: []byte{1, 0, 0, 0}},
		{Name: "u64", DType: Uint64, Shape: []int64{1}, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "bf16", DType: BFloat16, Shape: []int64{1}, Data: []byte{0x80, 0x3f}},
		{Name: "scalar", DType: Float32, Data: float32Bytes(0.5)},
		{Name: "empty", DType: Float32, Shape: []int64{0, 5}},
		{Name: "rank8", DType: Uint8, Shape: []int64{1, 1, 1, 1, 1, 1, 1, 2}, Data: []byte{9, 9}},
		{Name: strings.Repeat("n", MaxNameLen), DType: Uint8, Shape: []int64{1}, Data: []byte{7}},
	}}, newInferRequest},
	{"infer response, OK", 1, &InferResponse{
		Status: StatusOK, ServedBy: Primary, TotalMicros: 850, FrameSeq: 7,
		Backends: [NumBackends]BackendReport{
			{Started: true, Finished: true, Outcome: OutcomeOK, LatencyMicros: 812},
			{Started: true, Outcome: OutcomeRunning, LatencyMicros: 815},
		},
		ModelName: "pilotnet", ModelVersion: "1.0.0",
		Outputs: []Tensor{{Name: "y", DType: Float32, Shape: []int64{1, 1}, Data: float32Bytes(0.25)}},
	}, newInferResponse},
	{"infer response, served by degraded", 9, &InferResponse{
		Status: StatusOK, ServedBy: Degraded, TotalMicros: 19000, FrameSeq: 8,
		Backends: [NumBackends]BackendReport{
			{Started: true, Finished: true, Outcome: OutcomeError, LatencyMicros: 40},
			{Started: true, Finished: true, Outcome: OutcomeInvalidOutput, StartMicros: 5000, LatencyMicros: 900},
			{Started: true, Finished: true, Outcome: OutcomeOK, StartMicros: 12000, LatencyMicros: 6000},
		},
		ModelName: "pooled-mlp", ModelVersion: "0.1",
		Outputs: []Tensor{{Name: "controls", DType: Float32, Shape: []int64{1, 3}, Data: float32Bytes(0.1, 0.5, 0)}},
	}, newInferResponse},
	{"infer response, NO_RESULT invalid input", 10, &InferResponse{
		Status: StatusNoResult, Reason: ReasonInvalidInput, FrameSeq: 9,
		Detail: `input "frame": expected float32[1 3 66 200], got uint8[1 3 66 200]`,
	}, newInferResponse},
	{"infer response, NO_RESULT MRM, every field", 11, &InferResponse{
		Status: StatusNoResult, Reason: ReasonMRM, TotalMicros: 3,
		Backends: [NumBackends]BackendReport{
			{Started: true, Finished: true, Outcome: OutcomeDeadline, LatencyMicros: 20000},
			{Started: true, Finished: false, Outcome: OutcomeDeadline, StartMicros: 1, LatencyMicros: 19999},
			{Outcome: OutcomeBusy},
		},
		ModelName: strings.Repeat("m", MaxModelLen), ModelVersion: strings.Repeat("v", MaxModelLen),
		Detail: strings.Repeat("é", MaxTextLen/2),
	}, newInferResponse},
	{"status request", 12, &StatusRequest{}, func() Decoder { return &StatusRequest{} }},
	{"status response", 13, &StatusResponse{JSON: []byte(`{"vehicle_state":"parked"}`)}, func() Decoder { return &StatusResponse{} }},
	{"control vehicle state", 14, &ControlRequest{Op: OpSetVehicleState, VehicleState: Parked}, newControlRequest},
	{"control force out", 15, &ControlRequest{Op: OpForceOut, Backend: Primary}, newControlRequest},
	{"control clear", 16, &ControlRequest{Op: OpClear, Backend: Shadow}, newControlRequest},
	{"control policy", 17, &ControlRequest{Op: OpSetPolicy, Policy: Cold}, newControlRequest},
	{"control drill", 18, &ControlRequest{Op: OpDrillFault, Backend: Degraded, Fault: Fault{
		Kind: "latency", Probability: 0.25, LatencyMicros: 5000, JitterMicros: 1000, Offset: -0.5}}, newControlRequest},
	{"control drill, long kind", 19, &ControlRequest{Op: OpDrillFault, Backend: Primary, Fault: Fault{Kind: strings.Repeat("k", MaxFaultKind)}}, newControlRequest},
	{"control log level", 20, &ControlRequest{Op: OpSetLogLevel, LogLevel: LogDebug}, newControlRequest},
	{"control checkpoint", 20, &ControlRequest{Op: OpCheckpoint, Checkpoint: CheckpointDifferential}, newControlRequest},
	{"control unknown op", 21, &ControlRequest{Op: 99}, newControlRequest},
	{"control response ok", 22, &ControlResponse{}, newControlResponse},
	{"control response refused", 23, &ControlResponse{Code: ControlNotParked, Message: "drills need the vehicle parked"}, newControlResponse},
	{"ping", 24, &Ping{}, func() Decoder { return &Ping{} }},
	{"pong", 24, &Pong{}, func() Decoder { return &Pong{} }},
	{"error closing", 0, &ErrorFrame{Code: CodeBadMagic, Close: true, Message: "bad magic"}, newErrorFrame},
	{"error kept", 25, &ErrorFrame{Code: CodeTooManyInFlight, Message: "too many in flight: 8"}, newErrorFrame},
}

// decoderFor returns a fresh decoder for a frame type, nil for an unknown
// type.
func decoderFor(t Type) Decoder {
	switch t {
	case TypeInferRequest:
		return &InferRequest{}
	case TypeInferResponse:
		return &InferResponse{}
	case TypeStatusRequest:
		return &StatusRequest{}
	case TypeStatusResponse:
		return &StatusResponse{}
	case TypeControlRequest:
		return &ControlRequest{}
	case TypeControlResponse:
		return &ControlResponse{}
	case TypePing:
		return &Ping{}
	case TypePong:
		return &Pong{}
	case TypeError:
		return &ErrorFrame{}
	}
	return nil
}

// canonTensor is a tensor with only what the protocol carries: empty
// shapes and data are nil so that decoded and constructed tensors compare.
type canonTensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte
}

func canonTensors(ts []Tensor) []canonTensor {
	var out []canonTensor
	for _, t := range ts {
		c := canonTensor{Name: t.Name, DType: t.DType}
		if len(t.Shape) > 0 {
			c.Shape = append([]int64(nil), t.Shape...)
		}
		if len(t.Data) > 0 {
			c.Data = append([]byte(nil), t.Data...)
		}
		out = append(out, c)
	}
	return out
}

// canon returns a comparable copy of a message.
func canon(m Message) any {
	switch m := m.(type) {
	case *InferRequest:
		return struct {
			FrameSeq, DeadlineMonoNS uint64
			BudgetMicros             uint32
			Tensors                  []canonTensor
		}{m.FrameSeq, m.DeadlineMonoNS, m.BudgetMicros, canonTensors(m.Tensors)}
	case *InferResponse:
		c := *m
		c.Outputs = nil
		return struct {
			R InferResponse
			T []canonTensor
		}{c, canonTensors(m.Outputs)}
	case *StatusResponse:
		return string(m.JSON)
	case *ControlRequest:
		return *m
	case *ControlResponse:
		return *m
	case *ErrorFrame:
		return *m
	}
	return m.MessageType()
}
