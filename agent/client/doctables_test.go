package client

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// docRows returns the rows of the table in docs/protocol.md whose header
// row is exactly columns, by the number in their first cell.
func docRows(t *testing.T, columns ...string) map[uint64][]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	header := "| " + strings.Join(columns, " | ") + " |"
	lines := strings.Split(string(doc), "\n")
	at := -1
	for i, l := range lines {
		if strings.TrimSpace(l) != header {
			continue
		}
		if at >= 0 {
			t.Fatalf("docs/protocol.md: two tables %s", header)
		}
		at = i
	}
	if at < 0 {
		t.Fatalf("docs/protocol.md: no table %s", header)
	}
	rows := map[uint64][]string{}
	for _, l := range lines[at+2:] {
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(l), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		n, err := strconv.ParseUint(cells[0], 10, 16)
		if err != nil || len(cells) != len(columns) {
			t.Fatalf("docs/protocol.md, table %s: row %q", header, l)
		}
		if _, dup := rows[n]; dup {
			t.Fatalf("docs/protocol.md, table %s: %d twice", header, n)
		}
		rows[n] = cells
	}
	return rows
}

// TestConstantsMatchProtocolDoc: every row of docs/protocol.md's tables of
// numbered names is one of this client's constants, with the same number
// and, where the client names values, the same name; and the client names
// nothing the document leaves out.
func TestConstantsMatchProtocolDoc(t *testing.T) {
	// stringName is v's String(), "" for the fallback that starts with
	// prefix and "(".
	stringName := func(s fmt.Stringer, prefix string) string {
		if n := s.String(); !strings.HasPrefix(n, prefix+"(") {
			return n
		}
		return ""
	}
	// listName is names[v], "" beyond.
	listName := func(names []string, v uint64) string {
		if v < uint64(len(names)) {
			return names[v]
		}
		return ""
	}
	tables := []struct {
		what    string
		columns []string
		consts  map[string]uint64 // by the document's name
		name    func(v uint64) string
		limit   uint64
		extra   func(v uint64, row []string) error
		ownOnly []uint64 // values the client names that the table does not list
	}{
		{
			what:    "message type",
			columns: []string{"type", "name", "direction", "payload"},
			consts: map[string]uint64{"INFER_REQUEST": typeInferRequest, "INFER_RESPONSE": typeInferResponse,
				"STATUS_REQUEST": typeStatusRequest, "STATUS_RESPONSE": typeStatusResponse,
				"CONTROL_REQUEST": typeControlRequest, "CONTROL_RESPONSE": typeControlResponse,
				"PING": typePing, "PONG": typePong, "ERROR": typeError,
				"REGISTER_BUFFER": typeRegisterBuffer, "BUFFER_READY": typeBufferReady, "INFER_SHARED": typeInferShared,
				"INFER_SHARED_RESPONSE": typeInferSharedResp, "DRILL_REQUEST": typeDrillRequest, "DRILL_RESPONSE": typeDrillResponse},
		},
		{
			what:    "dtype",
			columns: []string{"dtype", "name", "element size"},
			consts: map[string]uint64{"float32": uint64(Float32), "uint8": uint64(Uint8), "int8": uint64(Int8),
				"uint16": uint64(Uint16), "int16": uint64(Int16), "int32": uint64(Int32), "int64": uint64(Int64),
				"bool": uint64(Bool), "float16": uint64(Float16), "float64": uint64(Float64),
				"uint32": uint64(Uint32), "uint64": uint64(Uint64), "bfloat16": uint64(BFloat16)},
			name:  func(v uint64) string { return stringName(DType(v), "dtype") },
			limit: 1 << 8,
			extra: func(v uint64, row []string) error {
				if size, _, _ := strings.Cut(row[2], " "); size != strconv.Itoa(DType(v).Size()) {
					return fmt.Errorf("element size %q, Size() %d", row[2], DType(v).Size())
				}
				return nil
			},
		},
		{
			what:    "outcome",
			columns: []string{"outcome", "name", "meaning"},
			consts: map[string]uint64{"NOT_PLANNED": uint64(OutcomeNotPlanned), "SKIPPED": uint64(OutcomeSkipped),
				"RUNNING": uint64(OutcomeRunning), "OK": uint64(OutcomeOK), "INVALID_OUTPUT": uint64(OutcomeInvalidOutput),
				"ERROR": uint64(OutcomeError), "DEADLINE": uint64(OutcomeDeadline), "BUSY": uint64(OutcomeBusy)},
			name:  func(v uint64) string { return stringName(Outcome(v), "outcome") },
			limit: 1 << 8,
		},
		{
			what:    "reason",
			columns: []string{"reason", "name", "meaning"},
			consts: map[string]uint64{"MRM": uint64(ReasonMRM), "DEADLINE_PASSED_ON_ARRIVAL": uint64(ReasonDeadlinePassedOnArrival),
				"ALL_BACKENDS_FAILED": uint64(ReasonAllBackendsFailed), "DEADLINE_EXCEEDED": uint64(ReasonDeadlineExceeded),
				"OVERLOADED": uint64(ReasonOverloaded), "CANCELLED": uint64(ReasonCancelled),
				"SHUTTING_DOWN": uint64(ReasonShuttingDown), "INVALID_INPUT": uint64(ReasonInvalidInput),
				"INTERNAL": uint64(ReasonInternal)},
			name:    func(v uint64) string { return stringName(Reason(v), "reason") },
			limit:   1 << 16,
			ownOnly: []uint64{uint64(ReasonNone)}, // the reason of an OK answer is 0
		},
		{
			what:    "control op",
			columns: []string{"op", "name", "uses", "effect"},
			consts: map[string]uint64{"SET_VEHICLE_STATE": uint64(OpSetVehicleState), "FORCE_OUT": uint64(OpForceOut),
				"CLEAR": uint64(OpClear), "SET_POLICY": uint64(OpSetPolicy), "DRILL_FAULT": uint64(OpDrillFault),
				"SET_LOG_LEVEL": uint64(OpSetLogLevel), "CHECKPOINT": uint64(OpCheckpoint)},
		},
		{
			what:    "control code",
			columns: []string{"code", "name", "meaning"},
			consts: map[string]uint64{"OK": 0, "UNKNOWN_OP": 1, "INVALID_ARGUMENT": 2, "NOT_PERMITTED": 3,
				"DRILLS_DISABLED": 4, "NOT_PARKED": 5, "FAILED": 6, "NOT_FOUND": 7, "BUSY": 8}, // ControlError.Code has no constants
			name:  func(v uint64) string { return listName(controlCodes, v) },
			limit: 1 << 16,
		},
		{
			what:    "error code",
			columns: []string{"code", "name", "closes", "when"},
			consts: map[string]uint64{"BAD_MAGIC": CodeBadMagic, "UNSUPPORTED_VERSION": CodeUnsupportedVersion,
				"FRAME_TOO_LARGE": CodeFrameTooLarge, "MALFORMED_HEADER": CodeMalformedHeader, "TRUNCATED": CodeTruncated,
				"UNSUPPORTED_TYPE": CodeUnsupportedType, "INVALID_REQUEST": CodeInvalidRequest,
				"TOO_MANY_IN_FLIGHT": CodeTooManyInFlight, "NOT_PERMITTED": CodeNotPermitted,
				"TOO_MANY_CONNECTIONS": CodeTooManyConnections, "IDLE_TIMEOUT": CodeIdleTimeout,
				"SHUTTING_DOWN": CodeShuttingDown, "INTERNAL": CodeInternal, "BAD_BUFFER": CodeBadBuffer},
			name:  func(v uint64) string { return listName(errorCodes, v) },
			limit: 1 << 16,
		},
	}
	for _, tb := range tables {
		rows := docRows(t, tb.columns...)
		for v, row := range rows {
			if c, ok := tb.consts[row[1]]; !ok {
				t.Errorf("%s %d %s: no constant in the client", tb.what, v, row[1])
			} else if c != v {
				t.Errorf("%s %s: the document says %d, the client's constant is %d", tb.what, row[1], v, c)
			}
			if tb.name != nil && tb.name(v) != row[1] {
				t.Errorf("%s %d: the document says %s, the client %q", tb.what, v, row[1], tb.name(v))
			}
			if tb.extra != nil {
				if err := tb.extra(v, row); err != nil {
					t.Errorf("%s %d %s: %v", tb.what, v, row[1], err)
				}
			}
		}
		if len(tb.consts) != len(rows) {
			t.Errorf("%s: the client has %d constants, the document %d rows", tb.what, len(tb.consts), len(rows))
		}
		if tb.name == nil {
			continue
		}
	values:
		for v := range tb.limit {
			n := tb.name(v)
			if _, listed := rows[v]; n == "" || listed {
				continue
			}
			for _, own := range tb.ownOnly {
				if v == own {
					continue values
				}
			}
			t.Errorf("%s %d is %s in the client, and not in the document", tb.what, v, n)
		}
	}
}
