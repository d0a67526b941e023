package wire

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// MaxDrillRequest bounds a DRILL_REQUEST's payload: a query with, for a
// run, the scenario's YAML text.
const MaxDrillRequest = 64 << 10

// DrillRequest is the payload of DRILL_REQUEST: one UTF-8 JSON object, a
// DrillQuery. The server decodes the JSON; this type carries the bytes.
type DrillRequest struct {
	JSON []byte
}

// MessageType is TypeDrillRequest.
func (*DrillRequest) MessageType() Type { return TypeDrillRequest }

// AppendPayload appends the query as it is.
func (r *DrillRequest) AppendPayload(dst []byte) ([]byte, error) {
	if err := checkDrillQuery(r.JSON); err != nil {
		return dst, err
	}
	return append(dst, r.JSON...), nil
}

// DecodePayload points JSON at p (no copy) after checking its size and
// encoding.
func (r *DrillRequest) DecodePayload(p []byte) error {
	if err := checkDrillQuery(p); err != nil {
		return err
	}
	r.JSON = p
	return nil
}

func checkDrillQuery(p []byte) error {
	switch {
	case len(p) == 0:
		return invalidf("DRILL_REQUEST with an empty payload: want a JSON object such as {\"op\":\"list\"}")
	case len(p) > MaxDrillRequest:
		return invalidf("DRILL_REQUEST payload of %d bytes, the limit is %d", len(p), MaxDrillRequest)
	case !utf8.Valid(p):
		return invalidf("DRILL_REQUEST payload is not valid UTF-8")
	}
	return nil
}

// DrillResponse is the payload of DRILL_RESPONSE: one UTF-8 JSON object,
// a DrillAnswer.
type DrillResponse struct {
	JSON []byte
}

// MessageType is TypeDrillResponse.
func (*DrillResponse) MessageType() Type { return TypeDrillResponse }

// AppendPayload appends the answer as it is.
func (r *DrillResponse) AppendPayload(dst []byte) ([]byte, error) {
	return append(dst, r.JSON...), nil
}

// DecodePayload points JSON at p (no copy).
func (r *DrillResponse) DecodePayload(p []byte) error {
	r.JSON = p
	return nil
}

// The ops of a DrillQuery.
const (
	DrillOpList   = "list"   // the standard drills and the reports kept
	DrillOpRun    = "run"    // start a drill: Name (a standard one) or Scenario
	DrillOpReport = "report" // one report, or that its run is still going
)

// DrillQuery is DRILL_REQUEST's JSON (docs/protocol.md, DRILL_REQUEST).
type DrillQuery struct {
	Op string `json:"op"`
	// Name is a standard drill's name (run); Scenario a scenario file's
	// YAML text (run, instead of Name).
	Name     string `json:"name,omitempty"`
	Scenario string `json:"scenario,omitempty"`
	ID       string `json:"id,omitempty"` // report: the report's id
}

// DrillAnswer is DRILL_RESPONSE's JSON. Code is a CONTROL_RESPONSE code
// (OK, INVALID_ARGUMENT, DRILLS_DISABLED, NOT_PARKED, FAILED, NOT_FOUND,
// BUSY); Error says why when it is not OK. The other fields depend on the
// op.
type DrillAnswer struct {
	Code  ControlCode `json:"code"`
	Error string      `json:"error,omitempty"`
	// run: the report's id and the drill's name; report: the same, with
	// Running and Phase while the run goes on, Report once it is over.
	ID      string          `json:"id,omitempty"`
	Name    string          `json:"name,omitempty"`
	Running bool            `json:"running,omitempty"`
	Phase   string          `json:"phase,omitempty"`
	Report  json.RawMessage `json:"report,omitempty"`
	// list: the standard drills, the reports kept (newest first) and the
	// id of the run going on, if any.
	Drills  []DrillInfo  `json:"drills,omitempty"`
	Reports []DrillEntry `json:"reports,omitempty"`
	Current string       `json:"current,omitempty"`
}

// DrillInfo is a standard drill in a list answer.
type DrillInfo struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Phases      int     `json:"phases"`
	Seconds     float64 `json:"seconds"` // the phases' durations, summed
}

// DrillEntry is a kept report in a list answer.
type DrillEntry struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Passed  bool      `json:"passed"`
	Aborted string    `json:"aborted,omitempty"`
	Origin  string    `json:"origin,omitempty"`
}
