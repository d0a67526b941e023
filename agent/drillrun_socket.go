package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/socket"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/command"
)

// Drill answers a DRILL_REQUEST (socket.DrillHandler): the list of drills
// and reports, a run, a report.
func (s *service) Drill(ctx context.Context, peer socket.Peer, query []byte) []byte {
	a := s.d.drillAnswer(query)
	if a.Code != wire.ControlOK {
		s.d.log.Info("drill request refused", zap.Stringer("peer", peer), zap.Stringer("code", a.Code), zap.String("why", a.Error))
	}
	b, err := json.Marshal(a)
	if err != nil {
		b, _ = json.Marshal(wire.DrillAnswer{Code: wire.ControlFailed, Error: "drill answer: " + err.Error()})
	}
	return b
}

func drillFail(code wire.ControlCode, err string) *wire.DrillAnswer {
	return &wire.DrillAnswer{Code: code, Error: err}
}

// drillAnswer decodes and carries out one query.
func (d *Daemon) drillAnswer(query []byte) *wire.DrillAnswer {
	var q wire.DrillQuery
	dec := json.NewDecoder(bytes.NewReader(query))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return drillFail(wire.ControlInvalidArgument, "drill request: "+err.Error()+`; want a JSON object such as {"op":"list"}`)
	}
	switch q.Op {
	case wire.DrillOpList:
		return d.drillList()
	case wire.DrillOpRun:
		return d.drillRunQuery(q)
	case wire.DrillOpReport:
		return d.drillReportQuery(q.ID)
	}
	return drillFail(wire.ControlInvalidArgument, `drill request: op "`+q.Op+`": want list, run or report`)
}

func (d *Daemon) drillList() *wire.DrillAnswer {
	a := &wire.DrillAnswer{Code: wire.ControlOK}
	for _, s := range drill.Standard() {
		a.Drills = append(a.Drills, wire.DrillInfo{Name: s.Name, Description: s.Description, Phases: len(s.Phases), Seconds: s.Duration().Seconds()})
	}
	reports, err := d.drillReports()
	if err != nil {
		return drillFail(wire.ControlFailed, err.Error())
	}
	a.Reports = reports
	if cur := d.drillCurrent(); cur != nil {
		a.Current = cur.id
	}
	return a
}

// drillRunQuery starts a standard drill by name, or the scenario given.
func (d *Daemon) drillRunQuery(q wire.DrillQuery) *wire.DrillAnswer {
	var s drill.Scenario
	switch {
	case q.Name != "" && q.Scenario != "":
		return drillFail(wire.ControlInvalidArgument, "drill run: give a standard drill's name or a scenario, not both")
	case q.Scenario != "":
		var err error
		if s, err = drill.Parse([]byte(q.Scenario), "scenario"); err != nil {
			return drillFail(wire.ControlInvalidArgument, err.Error())
		}
	case q.Name != "":
		var ok bool
		if s, ok = drill.Lookup(q.Name); !ok {
			return drillFail(wire.ControlNotFound, "no standard drill "+quote(q.Name)+"; the standard drills are "+standardNames())
		}
	default:
		return drillFail(wire.ControlInvalidArgument, "drill run: name or scenario is required")
	}
	id, refused := d.startDrill(s, "vigilctl")
	if refused != nil {
		return drillFail(refused.code, refused.msg)
	}
	return &wire.DrillAnswer{Code: wire.ControlOK, ID: id, Name: s.Name}
}

func (d *Daemon) drillReportQuery(id string) *wire.DrillAnswer {
	if id == "" {
		return drillFail(wire.ControlInvalidArgument, "drill report: id is required")
	}
	if cur := d.drillCurrent(); cur != nil && cur.id == id {
		return &wire.DrillAnswer{Code: wire.ControlOK, ID: id, Name: cur.name, Running: true, Phase: *cur.phase.Load()}
	}
	raw, ok, err := d.drillReport(id)
	switch {
	case err != nil:
		return drillFail(wire.ControlFailed, "drill report "+quote(id)+": "+err.Error())
	case !ok:
		return drillFail(wire.ControlNotFound, "no drill report "+quote(id)+" on this vehicle (it keeps the newest 50; `vigilctl drill list` lists them)")
	}
	var head struct {
		Name string `json:"name"`
	}
	json.Unmarshal(raw, &head)
	return &wire.DrillAnswer{Code: wire.ControlOK, ID: id, Name: head.Name, Report: raw}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func standardNames() string {
	var names []string
	for _, s := range drill.Standard() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// executeDrillRun is the fleet command drill-run: a standard drill by
// name (args {"name": …}), answered at once with the report's id; the
// report follows on the drill topic and in the events stream. The command
// layer has refused it already if the vehicle is moving.
func (d *Daemon) executeDrillRun(env command.Envelope, log *zap.Logger) (json.RawMessage, error) {
	a, err := commandArgs(env.Args, "name")
	if err != nil {
		return nil, err
	}
	s, ok := drill.Lookup(a[0])
	if !ok {
		return nil, cmdlink.BadArgs("name: no standard drill %q; the standard drills are %s", a[0], standardNames())
	}
	id, refused := d.startDrill(s, "fleet:"+env.CorrelationID)
	if refused != nil {
		if refused.code == wire.ControlInvalidArgument {
			return nil, cmdlink.BadArgs("%s", refused.msg)
		}
		return nil, refused
	}
	log.Info("drill started by fleet command", zap.String("drill", s.Name), zap.String("id", id))
	return json.Marshal(map[string]string{"id": id, "name": s.Name})
}

// drillsStatus is the status document's drills section; nil when drills
// are off.
func (d *Daemon) drillsStatus() *status.DrillsStatus {
	if !d.cfg.Drills.Allowed {
		return nil
	}
	ds := &status.DrillsStatus{}
	if cur := d.drillCurrent(); cur != nil {
		ds.Running = &status.DrillRunning{ID: cur.id, Name: cur.name, Phase: *cur.phase.Load()}
	}
	reports, err := d.drillReports()
	if err != nil || len(reports) == 0 {
		return ds
	}
	e := reports[0]
	ds.Kept = len(reports)
	ds.Last = &status.DrillLast{ID: e.ID, Name: e.Name, Started: e.Started.UTC().Format(time.RFC3339Nano), Passed: e.Passed, Aborted: e.Aborted}
	return ds
}
