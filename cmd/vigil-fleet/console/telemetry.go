package console

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-av/vigil/storage/record"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/presence"
	"github.com/vigil-av/vigil/sync/sink"
)

// telemetry fills v's streams, backlog and rung from the sink, and
// returns the newest events of its events stream, oldest first.
func (c *collection) telemetry(v *Vehicle, hb *presence.Heartbeat) []Event {
	if c.src.Telemetry == nil {
		return nil
	}
	var vr *sink.VehicleReport
	for i := range c.rep.Vehicles {
		if c.rep.Vehicles[i].Vehicle == v.ID {
			vr = &c.rep.Vehicles[i]
		}
	}
	var store uint64
	var heads map[string]uint64
	switch {
	case hb != nil && hb.Store != 0:
		store, heads = hb.Store, hb.Heads
	case vr != nil && len(vr.Stores) > 0:
		// No live heartbeat: the newest store in lineage order, with the
		// last heartbeat the sink recorded of it.
		sr := vr.Stores[len(vr.Stores)-1]
		store = sr.Store
		if sr.Heartbeat != nil {
			heads = sr.Heartbeat.Heads
		}
	}
	if store == 0 {
		return nil
	}
	v.Store = fmt.Sprintf("%016x", store)
	byName := map[string]*Stream{}
	if vr != nil {
		for _, s := range vr.Streams {
			if s.Store != store {
				continue
			}
			var missing uint64
			for _, m := range s.Missing {
				missing += m.Len()
			}
			byName[s.Stream] = &Stream{Name: s.Stream, HighWater: s.HighWater, Through: s.Through, Records: s.Records, Missing: missing}
		}
	}
	for name := range heads {
		if byName[name] == nil {
			byName[name] = &Stream{Name: name}
		}
	}
	total, known := uint64(0), len(heads) > 0
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range byName {
			if !yield(k) {
				return
			}
		}
	}) {
		s := byName[name]
		if h, ok := heads[name]; ok {
			b := uint64(0)
			if h > s.Through {
				b = h - s.Through
			}
			s.Head, s.Backlog = &h, &b
			total += b
		} else {
			known = false
		}
		v.Streams = append(v.Streams, *s)
	}
	if known {
		v.Backlog = &total
	}
	c.rung(v, store, byName[record.StreamInference])
	return c.events(v, store, byName[record.StreamEvents])
}

// Summary's numbers (storage/record documents them; inference owns
// them).
var (
	servedByNames = map[uint8]string{0: "primary", 1: "shadow", 2: "degraded", record.ServedByNone: "none"}
	statusNames   = map[uint8]string{1: "ok", 2: "no_result"}
)

func nameOr(m map[uint8]string, n uint8) string {
	if s, ok := m[n]; ok {
		return s
	}
	return fmt.Sprintf("unknown(%d)", n)
}

// rung reads the newest request summary the sink holds.
func (c *collection) rung(v *Vehicle, store uint64, s *Stream) {
	if s == nil || s.HighWater == 0 {
		return
	}
	recs, err := c.src.Telemetry.Records(v.ID, store, record.StreamInference, s.HighWater-1, 1)
	if err != nil {
		c.problem("inference stream of %s: %v", v.ID, err)
		return
	}
	for _, r := range recs {
		if r.Kind != record.KindData {
			continue
		}
		sum, err := record.ParseSummary(r.Payload)
		if err != nil {
			c.problem("inference record %d of %s: %v", r.Seq, v.ID, err)
			return
		}
		v.Rung = &Rung{ServedBy: nameOr(servedByNames, sum.ServedBy), Status: nameOr(statusNames, sum.Status), At: r.Wall.UTC(), Seq: r.Seq}
	}
}

// events reads the newest TimelineRecords records of the events stream,
// and picks the failovers among them.
func (c *collection) events(v *Vehicle, store uint64, s *Stream) []Event {
	if s == nil || s.HighWater == 0 {
		return nil
	}
	after := uint64(0)
	if s.HighWater > TimelineRecords {
		after = s.HighWater - TimelineRecords
	}
	recs, err := c.src.Telemetry.Records(v.ID, store, record.StreamEvents, after, 0)
	if err != nil {
		c.problem("events stream of %s: %v", v.ID, err)
		return nil
	}
	out := make([]Event, 0, len(recs))
	for _, r := range recs {
		e := eventOf(r)
		out = append(out, e)
		if e.Type == "transition" && (strings.HasSuffix(e.Text, "→ failed") || strings.Contains(e.Text, "→ failed (")) {
			v.Failovers = append(v.Failovers, e)
		}
	}
	slices.Reverse(v.Failovers)
	if len(v.Failovers) > MaxFailovers {
		v.Failovers = v.Failovers[:MaxFailovers]
	}
	return out
}

// eventOf turns an events-stream record into a timeline line: the
// daemon's JSON events by their type, the store's own notices and gap
// records as they are.
func eventOf(r batch.Record) Event {
	e := Event{At: r.Wall.UTC(), Source: "events", Seq: r.Seq, Type: r.Kind.String()}
	switch r.Kind {
	case record.KindGap:
		sr := r.Storage(record.StreamEvents)
		g, err := sr.Gap()
		if err != nil {
			e.Text = "gap record that does not decode: " + err.Error()
		} else {
			e.Text = fmt.Sprintf("%s: %d records (%d-%d)", g.Reason, g.Count, g.First, g.Last)
		}
		return e
	case record.KindNotice:
		e.Text = string(r.Payload)
		return e
	}
	var m map[string]any
	if err := json.Unmarshal(r.Payload, &m); err != nil {
		e.Text = fmt.Sprintf("%d bytes that are not JSON", len(r.Payload))
		return e
	}
	typ, _ := m["type"].(string)
	if typ != "" {
		e.Type = typ
	}
	if at, ok := m["at"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
			e.At = t.UTC()
		}
	}
	e.Text = describe(typ, m)
	return e
}

// describe says an event in a line: the fields people look for first,
// then the others as name=value.
func describe(typ string, m map[string]any) string {
	str := func(k string) string { s, _ := m[k].(string); return s }
	var head string
	used := []string{"type", "at"}
	switch typ {
	case "transition":
		head = fmt.Sprintf("%s: %s → %s", str("backend"), str("from"), str("to"))
		if r := str("reason"); r != "" {
			head += " (" + r + ")"
		}
		return head
	case "plan":
		return "plan " + str("plan")
	case "alert":
		return fmt.Sprintf("alert %s: %s", str("kind"), str("reason"))
	case "drill_report":
		return drillEvent(m)
	case "model_deploy":
		head = fmt.Sprintf("%s %s v%v: %s → %s", str("role"), str("bundle"), m["version"], str("from"), str("to"))
		used = append(used, "role", "bundle", "version", "from", "to", "hash", "deployment")
	}
	var rest []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		if slices.Contains(used, k) {
			continue
		}
		b, _ := json.Marshal(m[k])
		rest = append(rest, k+"="+string(b))
	}
	return strings.TrimSpace(head + " " + strings.Join(rest, " "))
}

// timeline merges the events stream, the rollouts' decisions about v,
// its checkpoints and its presence, newest first.
func (c *collection) timeline(v *Vehicle, events []Event) []Event {
	out := slices.Clone(events)
	out = append(out, c.rolloutEvents(v.ID)...)
	if c.src.Checkpoints != nil {
		ms, err := c.src.Checkpoints.Manifests(v.ID)
		if err == nil {
			for _, m := range ms {
				out = append(out, Event{At: m.Created.UTC(), Source: "checkpoint", Type: "checkpoint",
					Text: fmt.Sprintf("checkpoint %s (%s, store %s, %d bytes) complete in the fleet's store", m.ID, m.Kind, m.StoreID, m.Bytes)})
			}
		}
	}
	if v.LastSeen != nil {
		out = append(out, Event{At: *v.LastSeen, Source: "presence", Type: "last_seen",
			Text: fmt.Sprintf("last heard from (status %q, judged %s)", v.Status, v.State)})
	}
	slices.SortStableFunc(out, func(a, b Event) int { return b.At.Compare(a.At) })
	if len(out) > MaxTimeline {
		out = out[:MaxTimeline]
	}
	return out
}

// drillEvent says a drill_report event (the whole report, as the daemon
// keeps it) in a line: the drill, its id and its verdict; the report's
// page is in the vehicle's Drills when the fleet's drill store has it.
func drillEvent(m map[string]any) string {
	rep, _ := m["report"].(map[string]any)
	str := func(k string) string { s, _ := rep[k].(string); return s }
	verdict := "FAIL"
	if passed, _ := rep["passed"].(bool); passed && str("aborted") == "" {
		verdict = "pass"
	}
	s := fmt.Sprintf("drill %s (report %s): %s", str("name"), str("id"), verdict)
	if a := str("aborted"); a != "" {
		s += ", aborted: " + a
	}
	if fs, _ := rep["failures"].([]any); len(fs) > 0 {
		s += fmt.Sprintf(", %d expectation(s) missed", len(fs))
	}
	return s
}
