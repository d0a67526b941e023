package presence

import (
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hb := func(wall time.Time) *Heartbeat {
		return &Heartbeat{Vehicle: "veh-1", Boot: 1, Seq: 7, Wall: wall, Interval: 10 * time.Second}
	}
	sub := t0.Add(-time.Second) // when the watcher subscribed: retained messages arrive then
	cases := []struct {
		name  string
		now   time.Time
		o     Observation
		state State
		seen  time.Time
		why   string
	}{
		{"online, fresh retained heartbeat", t0,
			Observation{Status: StatusOnline, StatusAt: sub, StatusRetained: true, Heartbeat: hb(t0.Add(-5 * time.Second)), HeartbeatAt: sub, HeartbeatRetained: true},
			Online, t0.Add(-5 * time.Second), ""},
		{"at exactly three intervals: still online", t0,
			Observation{Status: StatusOnline, StatusRetained: true, Heartbeat: hb(t0.Add(-30 * time.Second)), HeartbeatRetained: true},
			Online, t0.Add(-30 * time.Second), ""},
		{"the dead vehicle a restored broker calls online", t0,
			Observation{Status: StatusOnline, StatusAt: sub, StatusRetained: true, Heartbeat: hb(t0.Add(-31 * time.Second)), HeartbeatAt: sub, HeartbeatRetained: true},
			Stale, t0.Add(-31 * time.Second), "last heartbeat 31s ago"},
		{"online without any heartbeat", t0,
			Observation{Status: StatusOnline, StatusRetained: true},
			Stale, time.Time{}, "no heartbeat"},
		{"offline with no heartbeat", t0,
			Observation{Status: StatusOffline, StatusRetained: true},
			Offline, time.Time{}, "status offline"},
		{"offline beats a fresh retained heartbeat (a clean close)", t0,
			Observation{Status: StatusOffline, StatusAt: sub, StatusRetained: true, Heartbeat: hb(t0.Add(-2 * time.Second)), HeartbeatAt: sub, HeartbeatRetained: true},
			Offline, t0.Add(-2 * time.Second), "status offline"},
		{"a heartbeat heard after the offline status: back online", t0,
			Observation{Status: StatusOffline, StatusAt: sub, StatusRetained: true, Heartbeat: hb(t0.Add(-time.Hour)), HeartbeatAt: t0.Add(-100 * time.Millisecond)},
			Online, t0.Add(-100 * time.Millisecond), ""},
		{"an offline status heard after the last live heartbeat", t0,
			Observation{Status: StatusOffline, StatusAt: t0.Add(-50 * time.Millisecond), Heartbeat: hb(t0), HeartbeatAt: t0.Add(-100 * time.Millisecond)},
			Offline, t0.Add(-100 * time.Millisecond), "status offline"},
		{"a live heartbeat is timed by its arrival, not its stamp", t0,
			Observation{Status: StatusOnline, StatusRetained: true, Heartbeat: hb(t0.Add(-time.Hour)), HeartbeatAt: t0.Add(-time.Second)},
			Online, t0.Add(-time.Second), ""},
		{"a live heartbeat heard long ago", t0,
			Observation{Status: StatusOnline, StatusRetained: true, Heartbeat: hb(t0), HeartbeatAt: t0.Add(-40 * time.Second)},
			Stale, t0.Add(-40 * time.Second), "last heartbeat 40s ago"},
		{"a retained heartbeat dated far ahead is not believed", t0,
			Observation{Status: StatusOnline, StatusRetained: true, Heartbeat: hb(t0.Add(time.Hour)), HeartbeatRetained: true},
			Stale, t0.Add(time.Hour), "ahead of this clock"},
		{"a little ahead is clock skew within the allowance", t0,
			Observation{Status: StatusOnline, StatusRetained: true, Heartbeat: hb(t0.Add(20 * time.Second)), HeartbeatRetained: true},
			Online, t0.Add(20 * time.Second), ""},
		{"a heartbeat without status", t0,
			Observation{Heartbeat: hb(t0.Add(-time.Second)), HeartbeatRetained: true},
			Online, t0.Add(-time.Second), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Judge(c.now, c.o)
			if v.State != c.state || !v.LastSeen.Equal(c.seen) {
				t.Fatalf("got %s last seen %v (%s), want %s last seen %v", v.State, v.LastSeen, v.Why, c.state, c.seen)
			}
			if c.why == "" && v.Why != "" || !strings.Contains(v.Why, c.why) {
				t.Fatalf("why %q, want it to say %q", v.Why, c.why)
			}
			if c.o.Heartbeat != nil && v.StaleAfter != 30*time.Second {
				t.Fatalf("stale after %v, want 3 intervals", v.StaleAfter)
			}
		})
	}
}
