package client

import (
	"fmt"
	"time"
)

// DType is a tensor element type, numbered as ONNX's TensorProto.DataType.
type DType uint8

// Element types.
const (
	Float32  DType = 1
	Uint8    DType = 2
	Int8     DType = 3
	Uint16   DType = 4
	Int16    DType = 5
	Int32    DType = 6
	Int64    DType = 7
	Bool     DType = 9
	Float16  DType = 10
	Float64  DType = 11
	Uint32   DType = 12
	Uint64   DType = 13
	BFloat16 DType = 16
)

// Size is the size of one element in bytes, 0 for dtypes the protocol does
// not carry.
func (d DType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float32, Int32, Uint32:
		return 4
	case Int64, Float64, Uint64:
		return 8
	}
	return 0
}

var dtypeNames = map[DType]string{Float32: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16", Int16: "int16",
	Int32: "int32", Int64: "int64", Bool: "bool", Float16: "float16", Float64: "float64", Uint32: "uint32",
	Uint64: "uint64", BFloat16: "bfloat16"}

func (d DType) String() string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Tensor is a named tensor. Data holds the elements as little-endian bytes
// in row-major order. For float32 tensors a request may give Float32
// instead of Data; responses fill both.
//
// An input whose Pool is set is sent in shared memory: its data lies in
// the pool at Offset (Data and Float32 are not read), and the request goes
// as INFER_SHARED. Either every input of a request has a Pool or none.
type Tensor struct {
	Name    string
	DType   DType
	Shape   []int64
	Data    []byte
	Float32 []float32
	Pool    *Pool
	Offset  int
}

// InferRequest is an inference request.
type InferRequest struct {
	FrameSeq uint64
	// Budget is the time the daemon has to answer. Zero means the time left
	// until ctx's deadline; with both, the smaller counts.
	Budget time.Duration
	Inputs []Tensor
	// Out, when set, asks for the outputs in shared memory: the daemon
	// writes them into OutLength bytes at OutOffset (a multiple of 8) of
	// Out, a pool registered with RegisterWritablePool, and the answer's
	// outputs' Data are views of it. Needs every input in a pool.
	Out       *Pool
	OutOffset int
	OutLength int
}

// Status of an inference answer.
type Status uint8

// Statuses (0 is none).
const (
	StatusOK       Status = 1
	StatusNoResult Status = 2
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusNoResult:
		return "NO_RESULT"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Backend is a rung of the daemon's ladder; BackendNone in ServedBy of a
// NO_RESULT.
type Backend uint8

// Backends.
const (
	BackendNone Backend = 0
	Primary     Backend = 1
	Shadow      Backend = 2
	Degraded    Backend = 3
)

func (b Backend) String() string {
	switch b {
	case BackendNone:
		return "none"
	case Primary:
		return "primary"
	case Shadow:
		return "shadow"
	case Degraded:
		return "degraded"
	}
	return fmt.Sprintf("backend(%d)", uint8(b))
}

// Reason says why an answer has no result.
type Reason uint16

// Reasons.
const (
	ReasonNone                    Reason = 0
	ReasonMRM                     Reason = 1
	ReasonDeadlinePassedOnArrival Reason = 2
	ReasonAllBackendsFailed       Reason = 3
	ReasonDeadlineExceeded        Reason = 4
	ReasonOverloaded              Reason = 5
	ReasonCancelled               Reason = 6
	ReasonShuttingDown            Reason = 7
	ReasonInvalidInput            Reason = 8
	ReasonInternal                Reason = 9
)

var reasonNames = []string{"NONE", "MRM", "DEADLINE_PASSED_ON_ARRIVAL", "ALL_BACKENDS_FAILED", "DEADLINE_EXCEEDED",
	"OVERLOADED", "CANCELLED", "SHUTTING_DOWN", "INVALID_INPUT", "INTERNAL"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint16(r))
}

// Outcome is what one backend did for a request.
type Outcome uint8

// Outcomes.
const (
	OutcomeNotPlanned    Outcome = 0
	OutcomeSkipped       Outcome = 1
	OutcomeRunning       Outcome = 2
	OutcomeOK            Outcome = 3
	OutcomeInvalidOutput Outcome = 4
	OutcomeError         Outcome = 5
	OutcomeDeadline      Outcome = 6
	OutcomeBusy          Outcome = 7
)

var outcomeNames = []string{"NOT_PLANNED", "SKIPPED", "RUNNING", "OK", "INVALID_OUTPUT", "ERROR", "DEADLINE", "BUSY"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// BackendReport is what one backend did for a request.
type BackendReport struct {
	Started, Finished bool
	Outcome           Outcome
	Start             time.Duration // from the daemon's receipt of the request
	Latency           time.Duration // from the start to its answer
}

// InferResponse is the daemon's answer.
type InferResponse struct {
	Status   Status
	ServedBy Backend
	Reason   Reason // when Status is StatusNoResult
	Total    time.Duration
	FrameSeq uint64
	Backends [3]BackendReport // primary, shadow, degraded
	Model    string
	Version  string
	Detail   string
	Outputs  []Tensor
}

// OK reports whether the answer holds a result.
func (r *InferResponse) OK() bool { return r.Status == StatusOK }

// Output returns the output called name, or nil.
func (r *InferResponse) Output(name string) *Tensor {
	for i := range r.Outputs {
		if r.Outputs[i].Name == name {
			return &r.Outputs[i]
		}
	}
	return nil
}

// ControlOp is an operator command.
type ControlOp uint8

// Control operations.
const (
	OpSetVehicleState ControlOp = 1
	OpForceOut        ControlOp = 2
	OpClear           ControlOp = 3
	OpSetPolicy       ControlOp = 4
	OpDrillFault      ControlOp = 5
	OpSetLogLevel     ControlOp = 6
	OpCheckpoint      ControlOp = 7
)

// ControlRequest is an operator command. Value is the argument of
// OpSetVehicleState (1 parked, 2 driving), OpSetPolicy (1 hot, 2 warm,
// 3 cold), OpSetLogLevel (1 debug, 2 info, 3 warn, 4 error) and
// OpCheckpoint (1 full, 2 incremental, 3 differential); Backend that
// of OpForceOut, OpClear and OpDrillFault; the Fault fields that of
// OpDrillFault.
type ControlRequest struct {
	Op      ControlOp
	Backend Backend
	Value   uint8
	// FaultKind is hang, stuck, latency, error, nan, wrong or none.
	FaultKind   string
	Probability float64
	Latency     time.Duration // µs resolution
	Jitter      time.Duration
	Offset      float32
}

// Values of ControlRequest.Value.
const (
	Parked  uint8 = 1
	Driving uint8 = 2

	Hot  uint8 = 1
	Warm uint8 = 2
	Cold uint8 = 3

	LogDebug uint8 = 1
	LogInfo  uint8 = 2
	LogWarn  uint8 = 3
	LogError uint8 = 4

	CheckpointFull         uint8 = 1
	CheckpointIncremental  uint8 = 2
	CheckpointDifferential uint8 = 3
)

// ControlError is a control command the daemon refused or failed.
type ControlError struct {
	Code    uint16 // 1 UNKNOWN_OP … 8 BUSY, as docs/protocol.md lists
	Message string
}

// Names of ControlError codes.
var controlCodes = []string{"OK", "UNKNOWN_OP", "INVALID_ARGUMENT", "NOT_PERMITTED", "DRILLS_DISABLED", "NOT_PARKED", "FAILED", "NOT_FOUND", "BUSY"}

func (e *ControlError) Error() string {
	name := fmt.Sprintf("code %d", e.Code)
	if int(e.Code) < len(controlCodes) {
		name = controlCodes[e.Code]
	}
	return fmt.Sprintf("vigild refused the command: %s: %s", name, e.Message)
}

// ServerError is an ERROR frame from the daemon.
type ServerError struct {
	Code    uint16
	Message string
	// Closed: the daemon closes the connection after it; every request
	// still waiting fails with the same error.
	Closed bool
}

// Codes of ServerError.
const (
	CodeBadMagic           = 1
	CodeUnsupportedVersion = 2
	CodeFrameTooLarge      = 3
	CodeMalformedHeader    = 4
	CodeTruncated          = 5
	CodeUnsupportedType    = 6
	CodeInvalidRequest     = 7
	CodeTooManyInFlight    = 8
	CodeNotPermitted       = 9
	CodeTooManyConnections = 10
	CodeIdleTimeout        = 11
	CodeShuttingDown       = 12
	CodeInternal           = 13
	CodeBadBuffer          = 14
)

var errorCodes = []string{"", "BAD_MAGIC", "UNSUPPORTED_VERSION", "FRAME_TOO_LARGE", "MALFORMED_HEADER", "TRUNCATED",
	"UNSUPPORTED_TYPE", "INVALID_REQUEST", "TOO_MANY_IN_FLIGHT", "NOT_PERMITTED", "TOO_MANY_CONNECTIONS",
	"IDLE_TIMEOUT", "SHUTTING_DOWN", "INTERNAL", "BAD_BUFFER"}

func (e *ServerError) Error() string {
	name := fmt.Sprintf("error %d", e.Code)
	if int(e.Code) < len(errorCodes) && errorCodes[e.Code] != "" {
		name = errorCodes[e.Code]
	}
	switch e.Code {
	case CodeNotPermitted:
		return fmt.Sprintf("vigild refused the connection: %s: %s (ask the vehicle's administrator to add your uid or group to vigild's socket allow-list)", name, e.Message)
	case CodeTooManyConnections:
		return fmt.Sprintf("vigild refused the connection: %s: %s", name, e.Message)
	}
	return fmt.Sprintf("vigild: %s: %s", name, e.Message)
}
