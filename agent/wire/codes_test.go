package wire

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// docTable returns the rows of the table in docs/protocol.md whose header
// row has exactly the given columns, each row's cells trimmed. The first
// column of every row must be a number.
func docTable(t *testing.T, columns ...string) (rows []map[string]string, numbers []uint64) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	header := "| " + strings.Join(columns, " | ") + " |"
	lines := strings.Split(string(doc), "\n")
	found := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == header {
			if found >= 0 {
				t.Fatalf("docs/protocol.md has two tables %s", header)
			}
			found = i
		}
	}
	if found < 0 {
		t.Fatalf("docs/protocol.md has no table %s", header)
	}
	for _, l := range lines[found+2:] { // the header, then the alignment row
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(l), "|"), "|")
		if len(cells) != len(columns) {
			t.Fatalf("docs/protocol.md, table %s: row %q has %d cells", header, l, len(cells))
		}
		row := map[string]string{}
		for i, c := range cells {
			row[columns[i]] = strings.TrimSpace(c)
		}
		n, err := strconv.ParseUint(row[columns[0]], 10, 16)
		if err != nil {
			t.Fatalf("docs/protocol.md, table %s: row %q: %v", header, l, err)
		}
		rows, numbers = append(rows, row), append(numbers, n)
	}
	if len(rows) == 0 {
		t.Fatalf("docs/protocol.md, table %s: no rows", header)
	}
	return rows, numbers
}

// enumCase is one enumeration of the protocol against its table in
// docs/protocol.md: its constants by the document's names, and the name
// the code gives each value (ok false for a value it does not know).
type enumCase struct {
	columns []string
	consts  map[string]uint64
	name    func(v uint64) (string, bool)
	// extra checks a row's other columns.
	extra func(v uint64, row map[string]string) error
	// unlisted are values the code names that the table leaves out.
	unlisted []uint64
	// bits is the width of the type.
	bits int
}

// TestCodesMatchProtocolDoc: every row of the document's tables of
// numbered names is a constant of this package with the same number and
// name, and the package names no value the document does not list.
func TestCodesMatchProtocolDoc(t *testing.T) {
	known := func(s fmt.Stringer, fallback string) (string, bool) {
		name := s.String()
		return name, !strings.HasPrefix(name, fallback+"(")
	}
	cases := map[string]enumCase{
		"message type": {
			columns: []string{"type", "name", "direction", "payload"},
			consts: map[string]uint64{"INFER_REQUEST": uint64(TypeInferRequest), "INFER_RESPONSE": uint64(TypeInferResponse),
				"STATUS_REQUEST": uint64(TypeStatusRequest), "STATUS_RESPONSE": uint64(TypeStatusResponse),
				"CONTROL_REQUEST": uint64(TypeControlRequest), "CONTROL_RESPONSE": uint64(TypeControlResponse),
				"PING": uint64(TypePing), "PONG": uint64(TypePong), "ERROR": uint64(TypeError),
				"REGISTER_BUFFER": uint64(TypeRegisterBuffer), "BUFFER_READY": uint64(TypeBufferReady),
				"INFER_SHARED": uint64(TypeInferShared), "INFER_SHARED_RESPONSE": uint64(TypeInferSharedResp),
				"DRILL_REQUEST": uint64(TypeDrillRequest), "DRILL_RESPONSE": uint64(TypeDrillResponse)},
			bits: 8,
			name: func(v uint64) (string, bool) { return known(Type(v), "type") },
		},
		"dtype": {
			columns: []string{"dtype", "name", "element size"},
			consts: map[string]uint64{"float32": uint64(Float32), "uint8": uint64(Uint8), "int8": uint64(Int8),
				"uint16": uint64(Uint16), "int16": uint64(Int16), "int32": uint64(Int32), "int64": uint64(Int64),
				"bool": uint64(Bool), "float16": uint64(Float16), "float64": uint64(Float64), "uint32": uint64(Uint32),
				"uint64": uint64(Uint64), "bfloat16": uint64(BFloat16)},
			bits: 8,
			name: func(v uint64) (string, bool) { return known(DType(v), "dtype") },
			extra: func(v uint64, row map[string]string) error {
				if size, _, _ := strings.Cut(row["element size"], " "); size != strconv.Itoa(DType(v).Size()) {
					return fmt.Errorf("element size %q, Size() %d", row["element size"], DType(v).Size())
				}
				return nil
			},
		},
		"outcome": {
			columns: []string{"outcome", "name", "meaning"},
			consts: map[string]uint64{"NOT_PLANNED": uint64(OutcomeNotPlanned), "SKIPPED": uint64(OutcomeSkipped),
				"RUNNING": uint64(OutcomeRunning), "OK": uint64(OutcomeOK), "INVALID_OUTPUT": uint64(OutcomeInvalidOutput),
				"ERROR": uint64(OutcomeError), "DEADLINE": uint64(OutcomeDeadline), "BUSY": uint64(OutcomeBusy)},
			bits: 8,
			name: func(v uint64) (string, bool) { return known(Outcome(v), "outcome") },
		},
		"reason": {
			columns: []string{"reason", "name", "meaning"},
			consts: map[string]uint64{"MRM": uint64(ReasonMRM), "DEADLINE_PASSED_ON_ARRIVAL": uint64(ReasonDeadlinePassedOnArrival),
				"ALL_BACKENDS_FAILED": uint64(ReasonAllBackendsFailed), "DEADLINE_EXCEEDED": uint64(ReasonDeadlineExceeded),
				"OVERLOADED": uint64(ReasonOverloaded), "CANCELLED": uint64(ReasonCancelled),
				"SHUTTING_DOWN": uint64(ReasonShuttingDown), "INVALID_INPUT": uint64(ReasonInvalidInput),
				"INTERNAL": uint64(ReasonInternal)},
			bits:     16,
			name:     func(v uint64) (string, bool) { return known(Reason(v), "reason") },
			unlisted: []uint64{uint64(ReasonNone)}, // "0 when OK", in the response's layout
		},
		"control op": {
			columns: []string{"op", "name", "uses", "effect"},
			consts: map[string]uint64{"SET_VEHICLE_STATE": uint64(OpSetVehicleState), "FORCE_OUT": uint64(OpForceOut),
				"CLEAR": uint64(OpClear), "SET_POLICY": uint64(OpSetPolicy), "DRILL_FAULT": uint64(OpDrillFault),
				"SET_LOG_LEVEL": uint64(OpSetLogLevel), "CHECKPOINT": uint64(OpCheckpoint)},
			bits: 8,
			name: func(v uint64) (string, bool) { return known(ControlOp(v), "op") },
		},
		"control code": {
			columns: []string{"code", "name", "meaning"},
			consts: map[string]uint64{"OK": uint64(ControlOK), "UNKNOWN_OP": uint64(ControlUnknownOp),
				"INVALID_ARGUMENT": uint64(ControlInvalidArgument), "NOT_PERMITTED": uint64(ControlNotPermitted),
				"DRILLS_DISABLED": uint64(ControlDrillsDisabled), "NOT_PARKED": uint64(ControlNotParked),
				"FAILED": uint64(ControlFailed), "NOT_FOUND": uint64(ControlNotFound), "BUSY": uint64(ControlBusy)},
			bits: 16,
			name: func(v uint64) (string, bool) { return known(ControlCode(v), "control") },
		},
		"error code": {
			columns: []string{"code", "name", "closes", "when"},
			consts: map[string]uint64{"BAD_MAGIC": uint64(CodeBadMagic), "UNSUPPORTED_VERSION": uint64(CodeUnsupportedVersion),
				"FRAME_TOO_LARGE": uint64(CodeFrameTooLarge), "MALFORMED_HEADER": uint64(CodeMalformedHeader),
				"TRUNCATED": uint64(CodeTruncated), "UNSUPPORTED_TYPE": uint64(CodeUnsupportedType),
				"INVALID_REQUEST": uint64(CodeInvalidRequest), "TOO_MANY_IN_FLIGHT": uint64(CodeTooManyInFlight),
				"NOT_PERMITTED": uint64(CodeNotPermitted), "TOO_MANY_CONNECTIONS": uint64(CodeTooManyConnections),
				"IDLE_TIMEOUT": uint64(CodeIdleTimeout), "SHUTTING_DOWN": uint64(CodeShuttingDown),
				"INTERNAL": uint64(CodeInternal), "BAD_BUFFER": uint64(CodeBadBuffer)},
			bits: 16,
			name: func(v uint64) (string, bool) { return known(ErrorCode(v), "error") },
			extra: func(v uint64, row map[string]string) error {
				if closes := map[bool]string{true: "yes", false: "no"}[ErrorCode(v).Closes()]; row["closes"] != closes {
					return fmt.Errorf("closes %q, Closes() says %s", row["closes"], closes)
				}
				return nil
			},
		},
	}
	for what, c := range cases {
		rows, numbers := docTable(t, c.columns...)
		listed := map[uint64]bool{}
		for i, row := range rows {
			v, name := numbers[i], row["name"]
			listed[v] = true
			if got, ok := c.consts[name]; !ok {
				t.Errorf("%s %d %s: no constant", what, v, name)
			} else if got != v {
				t.Errorf("%s %s: the document says %d, the constant is %d", what, name, v, got)
			}
			if got, ok := c.name(v); !ok || got != name {
				t.Errorf("%s %d: the document says %s, String() %s", what, v, name, got)
			}
			if c.extra != nil {
				if err := c.extra(v, row); err != nil {
					t.Errorf("%s %d %s: %v", what, v, name, err)
				}
			}
		}
		if len(c.consts) != len(rows) {
			t.Errorf("%s: %d constants, %d rows in the document", what, len(c.consts), len(rows))
		}
		for _, v := range c.unlisted {
			listed[v] = true
		}
		for v := range uint64(1) << c.bits {
			if name, ok := c.name(v); ok && !listed[v] {
				t.Errorf("%s %d is %s here, and not in the document", what, v, name)
			}
		}
	}
}
