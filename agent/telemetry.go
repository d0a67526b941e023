package agent

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/watchdog"
)

// telemetry is what the daemon records: per-request summaries, watchdog
// events and health readings, into the storage streams. Every write is a
// non-blocking Append: a full queue drops the record (counted and recorded
// as a gap by storage), never the request.
type telemetry struct {
	store  *storage.Store
	infer  *storage.Stream
	events *storage.Stream
	health *storage.Stream
}

// openStorage opens the buffer, sends the log lines into it (those logged
// while it opened too) and records how it opened. A buffer that cannot be
// opened at all leaves the daemon serving without telemetry, and saying
// so. It runs beside the models' loading: it reads only the
// configuration, writes only the buffer's fields and d.storageWarnings,
// and logs through d.log, which it does not change.
func (d *Daemon) openStorage(ctx context.Context) error {
	if !d.cfg.StorageEnabled {
		d.storageState = "off (storage.enabled: false)"
		d.log.Warn("storage off by configuration; telemetry is not buffered")
		return nil
	}
	sc := d.cfg.StorageConfig()
	st, err := storage.Open(ctx, sc, d.log.Named("storage"))
	if err != nil {
		d.storeLog.detach()
		d.storageState = "unavailable: " + err.Error()
		d.storageWarnings = append(d.storageWarnings, "telemetry buffer unavailable: "+err.Error())
		d.log.Error("storage could not be opened; serving without telemetry", zap.String("dir", sc.Dir), zap.Error(err))
		return nil
	}
	d.tel = &telemetry{
		store:  st,
		infer:  st.Stream(storage.StreamInference),
		events: st.Stream(storage.StreamEvents),
		health: st.Stream(storage.StreamHealth),
	}
	d.storageState = "on"
	if n := d.storeLog.attach(storage.NewLogCore(st, d.level)); n > 0 {
		d.log.Warn("log lines of the start not kept in the logs stream", zap.Int("lines", n))
	}
	if rec := st.Recovered(); rec != nil {
		d.storageWarnings = append(d.storageWarnings, "telemetry buffer was unreadable and was moved aside to "+rec.MovedTo)
		d.log.Error("storage recovered: the data directory could not be opened and was moved aside",
			zap.String("moved_to", rec.MovedTo), zap.Error(rec.Cause))
	}
	d.log.Info("storage open", zap.String("dir", sc.Dir), zap.Uint32("boot", st.Boot()),
		zap.Int64("quota_bytes", sc.QuotaBytes), zap.Duration("sync_interval", sc.SyncInterval))
	return nil
}

// event records one watchdog or daemon event as JSON in the events stream.
func (t *telemetry) event(v any) {
	if t == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	t.events.Append(b)
}

type transitionEvent struct {
	Type    string `json:"type"`
	At      string `json:"at"`
	Backend string `json:"backend,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Plan    string `json:"plan,omitempty"`
}

func (t *telemetry) ready(now time.Time, rd watchdog.Ready) {
	if t == nil {
		return
	}
	at := now.UTC().Format(time.RFC3339Nano)
	for _, tr := range rd.Transitions {
		t.event(transitionEvent{Type: "transition", At: at, Backend: tr.Backend.String(), From: tr.From.String(), To: tr.To.String(), Reason: tr.Reason})
	}
	for _, a := range rd.Alerts {
		t.event(transitionEvent{Type: "alert", At: at, Kind: a.Kind.String(), Reason: a.Message})
	}
	if rd.PlanChanged {
		t.event(transitionEvent{Type: "plan", At: at, Plan: rd.Plan.String()})
	}
}

// summarySize is the size of a request summary (record.Summary, whose
// layout the benchmarks and the cloud's readers share).
const summarySize = record.SummarySize

// request records one answer. It runs on the request path: no allocation,
// no blocking.
func (t *telemetry) request(buf *[summarySize]byte, frameSeq uint64, ans *inference.Answer, badInput bool) {
	if t == nil {
		return
	}
	s := record.Summary{Status: byte(ans.Status), Reason: byte(ans.Reason), ServedBy: record.ServedByNone,
		FrameSeq: frameSeq, PlanSeq: ans.PlanSeq, Latency: ans.Latency}
	if badInput {
		s.Status, s.Reason = byte(inference.StatusNoResult), record.ReasonInvalidInput
	} else if ans.Status == inference.StatusOK {
		s.ServedBy = byte(ans.ServedBy)
	}
	for i, r := range ans.Backends {
		s.Runs[i] = record.SummaryRun{Outcome: byte(r.Outcome), StartedAfter: r.StartedAfter, Latency: r.Latency}
	}
	b := buf[:]
	s.Put(b)
	t.infer.Append(b)
}

func (d *Daemon) storageStatus() status.StorageStatus {
	ss := status.StorageStatus{State: d.storageState}
	if d.tel == nil {
		return ss
	}
	st := d.tel.store.Stats()
	ss.Dir, ss.Boot, ss.DiskBytes, ss.PeakBytes = st.Dir, st.Boot, st.DiskBytes, st.DiskPeakBytes
	ss.QuotaBytes, ss.FreeBytes, ss.Evictions = st.QuotaBytes, st.FreeBytes, st.Evictions
	if st.Refusing != 0 {
		ss.Refusing = st.Refusing.String()
	}
	if st.LastError != nil {
		ss.LastError = st.LastError.Error()
	}
	if st.Recovery != nil {
		ss.Recovered = st.Recovery.MovedTo
	}
	for _, s := range st.Streams {
		x := status.StreamStatus{
			Name: s.Name, Priority: s.Priority.String(), Assigned: s.Assigned, Durable: s.Durable, Acked: s.Cursor,
			DurableLag: s.DurableLag, BacklogRecords: s.Backlog.Records, BacklogBytes: s.Backlog.Bytes,
			OldestAgeS: s.Backlog.OldestAge.Seconds(), Evicted: s.Evicted, Gaps: s.Gaps,
		}
		for r, n := range s.Dropped {
			if n > 0 {
				if x.Dropped == nil {
					x.Dropped = map[string]uint64{}
				}
				x.Dropped[r.String()] = n
			}
		}
		ss.Streams = append(ss.Streams, x)
	}
	return ss
}

// closeStorage closes the buffer once what it holds is written, or ctx
// ends.
func (d *Daemon) closeStorage(ctx context.Context) error {
	if d.tel == nil {
		return nil
	}
	return d.tel.store.Close(ctx)
}
