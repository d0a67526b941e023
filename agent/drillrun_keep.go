package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/storage"
)

// The reports are kept in the store's state (never evicted, carried by
// its checkpoints): each under drillKeyPrefix+id, and an index of them,
// newest first, under drillIndexKey. The newest keepDrills are kept.
const (
	drillKeyPrefix = "drills/"
	drillIndexKey  = "drills.index"
	keepDrills     = 50
	// drillStateLimit keeps a report inside a state value (64 KiB).
	drillStateLimit = 60 << 10
	// drillPublishLimit bounds the report published on the drill topic.
	drillPublishLimit = 120 << 10
	drillPublishWait  = 5 * time.Second
)

// DrillTopic is where a vehicle publishes its drill reports (QoS 1, not
// retained): the whole drill.Report as JSON.
func DrillTopic(vehicle string) string { return "vigil/v1/" + vehicle + "/drill" }

type drillIndex struct {
	Reports []wire.DrillEntry `json:"reports"`
}

// drillReportEvent is the events stream's record of a report.
type drillReportEvent struct {
	Type   string          `json:"type"` // "drill_report"
	Report json.RawMessage `json:"report"`
}

// keepDrillReport keeps a finished run's report in the store, appends it
// to the events stream (which reaches the cloud like all telemetry) and
// publishes it on the drill topic when the link is up. Series are thinned
// where a limit needs it; the figures never are.
func (d *Daemon) keepDrillReport(rep *drill.Report) {
	log := d.log.With(zap.String("drill", rep.Name), zap.String("id", rep.ID))
	if b, err := fitDrillReport(rep, drillStateLimit); err != nil {
		log.Error("drill report not kept", zap.Error(err))
	} else if err := d.putDrillReport(rep, b); err != nil {
		log.Error("drill report not kept", zap.Error(err))
	}
	limit := d.cfg.StorageConfig().MaxRecordBytes - 64 // the event's wrapping
	if b, err := fitDrillReport(rep, limit); err != nil {
		log.Error("drill report not recorded in the events stream", zap.Error(err))
	} else {
		d.tel.event(drillReportEvent{Type: "drill_report", Report: b})
	}
	if c := d.cloud; c != nil {
		b, err := fitDrillReport(rep, drillPublishLimit)
		if err == nil {
			err = c.up.Publish(DrillTopic(d.cfg.VehicleID), b, false, drillPublishWait)
		}
		if err != nil {
			log.Warn("drill report not published now; it reaches the cloud in the events stream", zap.Error(err))
		}
	}
}

// putDrillReport stores the report and puts it first in the index,
// dropping the oldest beyond keepDrills.
func (d *Daemon) putDrillReport(rep *drill.Report, b []byte) error {
	st := d.tel.store
	d.drills.keepMu.Lock()
	defer d.drills.keepMu.Unlock()
	idx, err := d.readDrillIndex()
	if err != nil {
		return err
	}
	if err := st.PutState(drillKeyPrefix+rep.ID, b); err != nil {
		return err
	}
	e := wire.DrillEntry{ID: rep.ID, Name: rep.Name, Started: rep.Started, Passed: rep.Passed, Aborted: rep.Aborted, Origin: rep.Origin}
	idx.Reports = slices.Insert(slices.DeleteFunc(idx.Reports, func(x wire.DrillEntry) bool { return x.ID == rep.ID }), 0, e)
	var gone []wire.DrillEntry
	if len(idx.Reports) > keepDrills {
		gone = slices.Clone(idx.Reports[keepDrills:])
		idx.Reports = idx.Reports[:keepDrills]
	}
	ib, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := st.PutState(drillIndexKey, ib); err != nil {
		return fmt.Errorf("drill reports' index: %w", err)
	}
	for _, g := range gone {
		if err := st.DeleteState(drillKeyPrefix + g.ID); err != nil {
			d.log.Warn("old drill report not deleted", zap.String("id", g.ID), zap.Error(err))
		}
	}
	return nil
}

// readDrillIndex reads the index of the reports kept; none is empty.
func (d *Daemon) readDrillIndex() (drillIndex, error) {
	var idx drillIndex
	raw, err := d.tel.store.GetState(drillIndexKey)
	switch {
	case errors.Is(err, storage.ErrNoState):
		return idx, nil
	case err != nil:
		return idx, fmt.Errorf("drill reports' index: %w", err)
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		d.log.Warn("drill reports' index unreadable; starting a new one", zap.Error(err))
		return drillIndex{}, nil
	}
	return idx, nil
}

// drillReports lists the reports kept, newest first.
func (d *Daemon) drillReports() ([]wire.DrillEntry, error) {
	if d.tel == nil {
		return nil, nil
	}
	d.drills.keepMu.Lock()
	defer d.drills.keepMu.Unlock()
	idx, err := d.readDrillIndex()
	return idx.Reports, err
}

// drillKept reports whether a report with this id is kept.
func (d *Daemon) drillKept(id string) bool {
	_, err := d.tel.store.GetState(drillKeyPrefix + id)
	return err == nil
}

// drillReport returns report id's JSON; false when none is kept.
func (d *Daemon) drillReport(id string) ([]byte, bool, error) {
	if d.tel == nil {
		return nil, false, nil
	}
	raw, err := d.tel.store.GetState(drillKeyPrefix + id)
	switch {
	case errors.Is(err, storage.ErrNoState):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return raw, true, nil
}

// fitDrillReport is the report's JSON in at most limit bytes: whole when
// it fits, else with its series thinned — the request samples that are
// not plain on-time answers of the primary and every ladder change and
// mark kept, the others one in k, k doubling until it fits
// (Series.RequestsThinned counts the samples left out). The figures and
// the verdict are never touched.
func fitDrillReport(rep *drill.Report, limit int) ([]byte, error) {
	b, err := json.Marshal(rep)
	if err != nil || len(b) <= limit {
		return b, err
	}
	thin := *rep
	for k := 2; k <= 1<<16; k *= 2 {
		reqs := thinRequests(rep.Series.Requests, k)
		thin.Series = drill.Series{
			Requests:        reqs,
			RequestsThinned: rep.Series.RequestsThinned + len(rep.Series.Requests) - len(reqs),
			Backlog:         everyKth(rep.Series.Backlog, k),
			Ladder:          rep.Series.Ladder,
			Marks:           rep.Series.Marks,
		}
		if b, err = json.Marshal(&thin); err != nil || len(b) <= limit {
			return b, err
		}
	}
	thin.Series = drill.Series{Marks: rep.Series.Marks, RequestsThinned: rep.Series.RequestsThinned + len(rep.Series.Requests)}
	if b, err = json.Marshal(&thin); err != nil || len(b) <= limit {
		return b, err
	}
	return nil, fmt.Errorf("drill report %s: %d bytes without its series, the limit is %d", rep.ID, len(b), limit)
}

func thinRequests(rs []drill.RequestSample, k int) []drill.RequestSample {
	out := make([]drill.RequestSample, 0, len(rs)/k+16)
	for i, r := range rs {
		plain := r.Status == "ok" && !r.Missed && r.ServedBy == "primary"
		if !plain || i%k == 0 {
			out = append(out, r)
		}
	}
	return out
}

func everyKth[T any](xs []T, k int) []T {
	out := make([]T, 0, len(xs)/k+1)
	for i := 0; i < len(xs); i += k {
		out = append(out, xs[i])
	}
	return out
}
