package console

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-av/vigil/sync/presence"
	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/sink"
)

// Sources are the console's data sources; a nil one is not configured
// (Drills nil means NoDrills).
type Sources struct {
	Presence    PresenceSource
	Telemetry   TelemetrySource
	Checkpoints CheckpointSource
	Rollouts    RolloutSource
	Drills      DrillSource
	// Info names them for the pages (Info.Drills is filled from Drills).
	Info SourceInfo
}

// notReported lists what the fleet side does not receive from vehicles
// today, for every vehicle.
var notReported = []string{
	"oldest unsynced record (the heartbeat carries the heads' sequence numbers, not their ages)",
	"link state as the vehicle sees it (live, catching up, offline): the fleet sees presence only",
	"active model versions per role (only rollouts the fleet ran are known)",
}

// collection is one Collect's state.
type collection struct {
	src      Sources
	now      time.Time
	problems []string
	presence []presence.Vehicle
	rep      sink.Report
	rollouts []*rollout.Rollout
}

func (c *collection) problem(format string, a ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, a...))
}

// Collect builds the fleet's view at now: every vehicle any source
// knows, sorted by id, without timelines.
func Collect(src Sources, now time.Time) Fleet {
	c := newCollection(src, now)
	f := Fleet{Generated: now.UTC(), Sources: c.info()}
	for _, id := range slices.Sorted(mapKeys(c.known())) {
		f.Vehicles = append(f.Vehicles, c.vehicle(id, false))
	}
	f.Problems = c.problems
	return f
}

// CollectVehicle builds one vehicle's view with its timeline, and the
// sources' problems; false when no source knows the vehicle.
func CollectVehicle(src Sources, id string, now time.Time) (Vehicle, []string, bool) {
	c := newCollection(src, now)
	if !c.known()[id] {
		return Vehicle{}, c.problems, false
	}
	v := c.vehicle(id, true)
	return v, c.problems, true
}

// known returns the ids of every vehicle a source knows.
func (c *collection) known() map[string]bool {
	ids := map[string]bool{}
	for _, v := range c.presence {
		ids[v.Observation.Vehicle] = true
	}
	for _, v := range c.rep.Vehicles {
		ids[v.Vehicle] = true
	}
	if c.src.Checkpoints != nil {
		vs, err := c.src.Checkpoints.Vehicles()
		if err != nil {
			c.problem("checkpoints: %v", err)
		}
		for _, v := range vs {
			ids[v] = true
		}
	}
	for _, r := range c.rollouts {
		for _, v := range r.Vehicles {
			ids[v.ID] = true
		}
	}
	return ids
}

func newCollection(src Sources, now time.Time) *collection {
	if src.Drills == nil {
		src.Drills = NoDrills{}
	}
	c := &collection{src: src, now: now}
	if src.Presence != nil {
		c.presence = src.Presence.Vehicles()
	}
	if src.Telemetry != nil {
		rep, err := src.Telemetry.Report()
		if err != nil {
			c.problem("telemetry: %v", err)
		}
		c.rep = rep
	}
	if src.Rollouts != nil {
		rs, err := src.Rollouts.List()
		if err != nil {
			c.problem("rollouts: %v", err)
		}
		c.rollouts = rs
	}
	return c
}

func (c *collection) info() SourceInfo {
	in := c.src.Info
	in.Drills = c.src.Drills.Describe()
	return in
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// vehicle builds one vehicle's view from every source.
func (c *collection) vehicle(id string, timeline bool) Vehicle {
	v := Vehicle{ID: id, State: "unknown", NotReported: notReported, Drills: []Drill{}}
	var hb *presence.Heartbeat
	for _, p := range c.presence {
		if p.Observation.Vehicle == id {
			hb = fillPresence(&v, p)
		}
	}
	events := c.telemetry(&v, hb)
	c.checkpoints(&v)
	c.rolloutsOf(&v)
	if ds, err := c.src.Drills.Drills(id); err != nil {
		c.problem("drills of %s: %v", id, err)
	} else if ds != nil {
		v.Drills = ds
	}
	if timeline {
		v.Timeline = c.timeline(&v, events)
	}
	return v
}

func fillPresence(v *Vehicle, p presence.Vehicle) *presence.Heartbeat {
	v.State, v.Online, v.Why, v.Status = string(p.State), p.State == presence.Online, p.Why, p.Status
	v.StaleAfterMs = p.StaleAfter.Milliseconds()
	if !p.LastSeen.IsZero() {
		t := p.LastSeen.UTC()
		v.LastSeen = &t
	}
	hb := p.Heartbeat
	if hb == nil {
		return nil
	}
	v.Boot, v.Seq, v.IntervalMs, v.Software = hb.Boot, hb.Seq, hb.Interval.Milliseconds(), hb.Software
	if hb.Store != 0 {
		v.Store = fmt.Sprintf("%016x", hb.Store)
	}
	return hb
}

// rolloutsOf adds the rollouts that include v, newest first.
func (c *collection) rolloutsOf(v *Vehicle) {
	rs := slices.Clone(c.rollouts)
	slices.SortFunc(rs, func(a, b *rollout.Rollout) int { return b.Created.Compare(a.Created) })
	for _, r := range rs {
		rv := r.Vehicle(v.ID)
		if rv == nil {
			continue
		}
		cnt := r.Count(0)
		breaker := fmt.Sprintf("closed: %d failed of %d with an outcome (trips above %s once %d have one)",
			cnt.Failed, cnt.Outcomes(), r.Spec.MaxFailures, max(1, r.Spec.MinVehicles))
		tripped := r.Status == rollout.Halted
		if tripped {
			breaker = fmt.Sprintf("TRIPPED: %d failed of %d with an outcome, over %s", cnt.Failed, cnt.Outcomes(), r.Spec.MaxFailures)
		}
		v.Rollouts = append(v.Rollouts, Rollout{ID: r.Spec.ID, Bundle: r.Spec.Bundle.Name, Version: r.Spec.Bundle.Version,
			Role: r.Spec.Role, Status: string(r.Status), Breaker: breaker, Tripped: tripped, Outcome: string(rv.Outcome),
			State: string(rv.State), Reason: orWhy(rv.Reason, rv.Why), Updated: rv.Updated.UTC(),
			Command: "vigil-fleet rollout status " + r.Spec.ID})
	}
}

func orWhy(reason, why string) string {
	if reason != "" {
		return reason
	}
	return why
}

// checkpoints adds the newest complete checkpoint and its verification.
func (c *collection) checkpoints(v *Vehicle) {
	if c.src.Checkpoints == nil {
		return
	}
	ms, err := c.src.Checkpoints.Manifests(v.ID)
	if err != nil {
		c.problem("checkpoints of %s: %v", v.ID, err)
		return
	}
	v.Checkpoints = len(ms)
	if len(ms) == 0 {
		return
	}
	m := ms[len(ms)-1] // oldest first
	cp := &Checkpoint{ID: m.ID, Kind: string(m.Kind), Store: m.StoreID, Created: m.Created.UTC(), Bytes: m.Bytes, Verified: "never"}
	ver, ok, err := c.src.Checkpoints.LastVerification(v.ID, m.StoreID, m.ID)
	switch {
	case err != nil:
		c.problem("checkpoint %s of %s: %v", m.ID, v.ID, err)
	case ok:
		at := ver.At.UTC()
		cp.VerifiedAt, cp.ReadData, cp.Problem = &at, ver.ReadData, ver.Problem
		cp.Verified = "ok"
		if !ver.OK {
			cp.Verified = "FAIL"
		}
	}
	v.Checkpoint = cp
}

// rolloutEvents are the rollout decisions about v, for its timeline.
func (c *collection) rolloutEvents(id string) []Event {
	var out []Event
	for _, r := range c.rollouts {
		if r.Vehicle(id) == nil {
			continue
		}
		for _, e := range r.Log {
			if e.Vehicle != id && e.Vehicle != "" {
				continue
			}
			text := strings.TrimSpace(fmt.Sprintf("rollout %s: %s", r.Spec.ID, e.Why))
			out = append(out, Event{At: e.At.UTC(), Source: "rollout", Type: string(e.What), Text: text})
		}
	}
	return out
}
