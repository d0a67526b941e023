package wire

import "fmt"

// The enumerations of docs/protocol.md: for each, its constants and, where
// it has names, one table keyed by them. codes_test.go checks both against
// the document's tables; agent/enums_test.go checks those the agent
// converts from package inference.

// Backend names a rung of the ladder on the wire. Unlike watchdog.Backend,
// 0 means none (used by served_by).
type Backend uint8

// Backends.
const (
	BackendNone Backend = 0
	Primary     Backend = 1
	Shadow      Backend = 2
	Degraded    Backend = 3
)

// NumBackends is the number of backend reports in a response.
const NumBackends = 3

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

// Index is the backend's position in InferResponse.Backends (0 for
// Primary); -1 for none or an unknown value.
func (b Backend) Index() int {
	if b >= Primary && b <= Degraded {
		return int(b) - 1
	}
	return -1
}

// Status is the outcome of an inference request. Zero is not a status, so
// that a zeroed response never reads as OK. The numbers are those of
// inference.Status (agent/enums_test.go checks every value).
type Status uint8

// Statuses.
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

// Reason says why a response has no result. Reasons 0 to 7 are numbered as
// inference.Reason, so that the agent converts a router's reason by type
// conversion (agent/enums_test.go checks every value); 8 and 9 are the
// agent's own.
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

var reasonNames = [...]string{
	ReasonNone:                    "NONE",
	ReasonMRM:                     "MRM",
	ReasonDeadlinePassedOnArrival: "DEADLINE_PASSED_ON_ARRIVAL",
	ReasonAllBackendsFailed:       "ALL_BACKENDS_FAILED",
	ReasonDeadlineExceeded:        "DEADLINE_EXCEEDED",
	ReasonOverloaded:              "OVERLOADED",
	ReasonCancelled:               "CANCELLED",
	ReasonShuttingDown:            "SHUTTING_DOWN",
	ReasonInvalidInput:            "INVALID_INPUT",
	ReasonInternal:                "INTERNAL",
}

func (r Reason) String() string {
	if n := name(reasonNames[:], int(r)); n != "" {
		return n
	}
	return fmt.Sprintf("reason(%d)", uint16(r))
}

// Outcome is what one backend did for a request, numbered as
// inference.Outcome (agent/enums_test.go checks every value).
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

var outcomeNames = [...]string{
	OutcomeNotPlanned:    "NOT_PLANNED",
	OutcomeSkipped:       "SKIPPED",
	OutcomeRunning:       "RUNNING",
	OutcomeOK:            "OK",
	OutcomeInvalidOutput: "INVALID_OUTPUT",
	OutcomeError:         "ERROR",
	OutcomeDeadline:      "DEADLINE",
	OutcomeBusy:          "BUSY",
}

func (o Outcome) String() string {
	if n := name(outcomeNames[:], int(o)); n != "" {
		return n
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// ErrorCode is the code of an ERROR frame.
type ErrorCode uint16

// Error codes.
const (
	CodeBadMagic           ErrorCode = 1
	CodeUnsupportedVersion ErrorCode = 2
	CodeFrameTooLarge      ErrorCode = 3
	CodeMalformedHeader    ErrorCode = 4
	CodeTruncated          ErrorCode = 5
	CodeUnsupportedType    ErrorCode = 6
	CodeInvalidRequest     ErrorCode = 7
	CodeTooManyInFlight    ErrorCode = 8
	CodeNotPermitted       ErrorCode = 9
	CodeTooManyConnections ErrorCode = 10
	CodeIdleTimeout        ErrorCode = 11
	CodeShuttingDown       ErrorCode = 12
	CodeInternal           ErrorCode = 13
	CodeBadBuffer          ErrorCode = 14
)

var errorCodeNames = [...]string{
	CodeBadMagic:           "BAD_MAGIC",
	CodeUnsupportedVersion: "UNSUPPORTED_VERSION",
	CodeFrameTooLarge:      "FRAME_TOO_LARGE",
	CodeMalformedHeader:    "MALFORMED_HEADER",
	CodeTruncated:          "TRUNCATED",
	CodeUnsupportedType:    "UNSUPPORTED_TYPE",
	CodeInvalidRequest:     "INVALID_REQUEST",
	CodeTooManyInFlight:    "TOO_MANY_IN_FLIGHT",
	CodeNotPermitted:       "NOT_PERMITTED",
	CodeTooManyConnections: "TOO_MANY_CONNECTIONS",
	CodeIdleTimeout:        "IDLE_TIMEOUT",
	CodeShuttingDown:       "SHUTTING_DOWN",
	CodeInternal:           "INTERNAL",
	CodeBadBuffer:          "BAD_BUFFER",
}

func (c ErrorCode) String() string {
	if n := name(errorCodeNames[:], int(c)); n != "" {
		return n
	}
	return fmt.Sprintf("error(%d)", uint16(c))
}

// Closes reports whether the protocol closes the connection after an ERROR
// with this code.
func (c ErrorCode) Closes() bool {
	switch c {
	case CodeUnsupportedType, CodeInvalidRequest, CodeTooManyInFlight, CodeInternal, CodeBadBuffer:
		return false
	}
	return true
}

// ControlOp is the operation of a CONTROL_REQUEST.
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

var opNames = [...]string{
	OpSetVehicleState: "SET_VEHICLE_STATE",
	OpForceOut:        "FORCE_OUT",
	OpClear:           "CLEAR",
	OpSetPolicy:       "SET_POLICY",
	OpDrillFault:      "DRILL_FAULT",
	OpSetLogLevel:     "SET_LOG_LEVEL",
	OpCheckpoint:      "CHECKPOINT",
}

func (o ControlOp) String() string {
	if n := name(opNames[:], int(o)); n != "" {
		return n
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ControlCode is the result of a CONTROL_REQUEST.
type ControlCode uint16

// Control result codes.
const (
	ControlOK              ControlCode = 0
	ControlUnknownOp       ControlCode = 1
	ControlInvalidArgument ControlCode = 2
	ControlNotPermitted    ControlCode = 3
	ControlDrillsDisabled  ControlCode = 4
	ControlNotParked       ControlCode = 5
	ControlFailed          ControlCode = 6
	ControlNotFound        ControlCode = 7 // DRILL_REQUEST: no such drill or report
	ControlBusy            ControlCode = 8 // DRILL_REQUEST: a drill is already running
)

var controlCodeNames = [...]string{
	ControlOK:              "OK",
	ControlUnknownOp:       "UNKNOWN_OP",
	ControlInvalidArgument: "INVALID_ARGUMENT",
	ControlNotPermitted:    "NOT_PERMITTED",
	ControlDrillsDisabled:  "DRILLS_DISABLED",
	ControlNotParked:       "NOT_PARKED",
	ControlFailed:          "FAILED",
	ControlNotFound:        "NOT_FOUND",
	ControlBusy:            "BUSY",
}

func (c ControlCode) String() string {
	if n := name(controlCodeNames[:], int(c)); n != "" {
		return n
	}
	return fmt.Sprintf("control(%d)", uint16(c))
}

// VehicleState is the argument of OpSetVehicleState.
type VehicleState uint8

// Vehicle states.
const (
	Parked  VehicleState = 1
	Driving VehicleState = 2
)

func (v VehicleState) String() string {
	switch v {
	case Parked:
		return "parked"
	case Driving:
		return "driving"
	}
	return fmt.Sprintf("vehicle_state(%d)", uint8(v))
}

// Policy is the argument of OpSetPolicy. Unlike watchdog.Policy, 0 is not a
// policy.
type Policy uint8

// Policies.
const (
	Hot  Policy = 1
	Warm Policy = 2
	Cold Policy = 3
)

func (p Policy) String() string {
	switch p {
	case Hot:
		return "hot"
	case Warm:
		return "warm"
	case Cold:
		return "cold"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// LogLevel is the argument of OpSetLogLevel.
type LogLevel uint8

// Log levels.
const (
	LogDebug LogLevel = 1
	LogInfo  LogLevel = 2
	LogWarn  LogLevel = 3
	LogError LogLevel = 4
)

func (l LogLevel) String() string {
	switch l {
	case LogDebug:
		return "debug"
	case LogInfo:
		return "info"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	}
	return fmt.Sprintf("log_level(%d)", uint8(l))
}

// CheckpointKind is the argument of OpCheckpoint.
type CheckpointKind uint8

// Checkpoint kinds.
const (
	CheckpointFull         CheckpointKind = 1
	CheckpointIncremental  CheckpointKind = 2
	CheckpointDifferential CheckpointKind = 3
)

func (k CheckpointKind) String() string {
	switch k {
	case CheckpointFull:
		return "full"
	case CheckpointIncremental:
		return "incremental"
	case CheckpointDifferential:
		return "differential"
	}
	return fmt.Sprintf("checkpoint_kind(%d)", uint8(k))
}

// FaultKinds are the fault kinds OpDrillFault accepts; "none" clears.
// crash, wedge and leak hit a backend's worker process.
var FaultKinds = []string{"hang", "stuck", "latency", "error", "nan", "wrong", "crash", "wedge", "leak", "none"}

// name returns names[i], "" when i has no name.
func name(names []string, i int) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return ""
}
