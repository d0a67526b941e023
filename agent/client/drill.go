package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Drill codes of a refusal (ControlError.Code) besides those of CONTROL:
// no such drill or report, and a drill already running.
const (
	DrillNotFound uint16 = 7
	DrillBusy     uint16 = 8
)

// DrillInfo is a standard drill the daemon knows.
type DrillInfo struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Phases      int     `json:"phases"`
	Seconds     float64 `json:"seconds"`
}

// DrillEntry is a report the daemon keeps.
type DrillEntry struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Passed  bool      `json:"passed"`
	Aborted string    `json:"aborted,omitempty"`
	Origin  string    `json:"origin,omitempty"`
}

// DrillList is the answer to Drills.
type DrillList struct {
	Drills  []DrillInfo  `json:"drills"`
	Reports []DrillEntry `json:"reports"` // newest first
	Current string       `json:"current"` // the id of the run going on, if any
}

// DrillState is the answer to DrillReport: a run still going (Running,
// with its phase) or its report (the JSON of agent/drill's Report).
type DrillState struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Running bool            `json:"running"`
	Phase   string          `json:"phase"`
	Report  json.RawMessage `json:"report"`
}

type drillAnswer struct {
	Code  uint16 `json:"code"`
	Error string `json:"error"`
	DrillList
	DrillState
}

// DrillRun starts a drill on the daemon: a standard one by name, or the
// scenario file's YAML given (name then ignored). It returns the report's
// id at once; the run goes on in the daemon (DrillReport follows it). A
// refusal (drills off, not parked, a drill running, no such drill, a bad
// scenario) is a *ControlError.
func (c *Client) DrillRun(ctx context.Context, name string, scenario []byte) (string, error) {
	q := map[string]string{"op": "run"}
	if scenario != nil {
		q["scenario"] = string(scenario)
	} else {
		q["name"] = name
	}
	a, err := c.drill(ctx, q)
	if err != nil {
		return "", err
	}
	return a.ID, nil
}

// Drills lists the standard drills and the reports the daemon keeps.
func (c *Client) Drills(ctx context.Context) (*DrillList, error) {
	a, err := c.drill(ctx, map[string]string{"op": "list"})
	if err != nil {
		return nil, err
	}
	return &a.DrillList, nil
}

// DrillReport returns report id, or says that its run is still going.
func (c *Client) DrillReport(ctx context.Context, id string) (*DrillState, error) {
	a, err := c.drill(ctx, map[string]string{"op": "report", "id": id})
	if err != nil {
		return nil, err
	}
	return &a.DrillState, nil
}

// drill sends one DRILL_REQUEST and decodes its DRILL_RESPONSE.
func (c *Client) drill(ctx context.Context, q map[string]string) (*drillAnswer, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	if len(body) > maxDrillRequest {
		return nil, fmt.Errorf("drill %s: request of %d bytes, the protocol's limit is %d", q["op"], len(body), maxDrillRequest)
	}
	cl := &call{done: make(chan struct{}), typ: typeDrillResponse}
	err = c.roundTrip(ctx, cl, func(b []byte, id uint64) ([]byte, error) {
		start := len(b)
		b = append(beginFrame(b, typeDrillRequest, id), body...)
		return b, endFrame(b, start)
	})
	if err != nil {
		return nil, fmt.Errorf("drill %s: %w", q["op"], err)
	}
	var a drillAnswer
	if err := json.Unmarshal(cl.body, &a); err != nil {
		return nil, protocolf("DRILL_RESPONSE: %v", err)
	}
	if a.Code != 0 {
		return nil, &ControlError{Code: a.Code, Message: a.Error}
	}
	return &a, nil
}

// maxDrillRequest is the protocol's limit on a DRILL_REQUEST payload.
const maxDrillRequest = 64 << 10
