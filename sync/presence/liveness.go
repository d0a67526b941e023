package presence

import (
	"fmt"
	"time"
)

// StaleIntervals is how many of its heartbeat intervals a vehicle may go
// unheard before it is stale.
const StaleIntervals = 3

// State is a vehicle's state as the cloud may believe it.
type State string

const (
	// Online: a heartbeat fresher than StaleIntervals intervals, and no
	// offline status after it.
	Online State = "online"
	// Offline: the vehicle (or its last will) said so, and no heartbeat
	// came after.
	Offline State = "offline"
	// Stale: the status does not say offline, but the last heartbeat is
	// older than StaleIntervals intervals, dated too far ahead, or there
	// is none: a vehicle that died unseen (after the broker's snapshot,
	// say) looks like this.
	Stale State = "stale"
)

// Observation is what a watcher saw of one vehicle: the last status and
// the last heartbeat, when each arrived on the watcher's clock, and
// whether the broker held it retained when the watcher subscribed (a
// retained message is as old as its content says; one published while
// the watcher listened is as old as its arrival).
type Observation struct {
	Vehicle        string
	Status         string // the payload; empty when none was seen
	StatusAt       time.Time
	StatusRetained bool

	Heartbeat         *Heartbeat // nil when none was seen
	HeartbeatAt       time.Time
	HeartbeatRetained bool
}

// Verdict is Judge's answer.
type Verdict struct {
	State State
	// LastSeen is when the vehicle was last heard from: the arrival of a
	// heartbeat published while the watcher listened (the watcher's
	// clock), else the retained heartbeat's own wall time (the vehicle's
	// clock); zero without a heartbeat.
	LastSeen time.Time
	// StaleAfter is how old LastSeen may get before the vehicle is stale:
	// StaleIntervals of the heartbeat's interval; zero without one.
	StaleAfter time.Duration
	// Why explains a state other than online from a fresh heartbeat.
	Why string
}

// Judge decides what o means at now. It is pure: the caller reads the
// clock.
//
//   - An offline status is believed unless a fresh heartbeat arrived
//     after it while the watcher listened (the vehicle came back).
//   - Otherwise the heartbeat decides, whatever the status says: online
//     when LastSeen is at most StaleAfter old, stale when older, when a
//     retained heartbeat is dated more than StaleAfter ahead of now (the
//     vehicle's clock cannot be trusted), or when there is none.
func Judge(now time.Time, o Observation) Verdict {
	hb := o.Heartbeat
	if hb == nil {
		if o.Status == StatusOffline {
			return Verdict{State: Offline, Why: "status offline"}
		}
		return Verdict{State: Stale, Why: fmt.Sprintf("status %q but no heartbeat", o.Status)}
	}
	v := Verdict{StaleAfter: StaleIntervals * hb.Interval, LastSeen: hb.Wall}
	live := !o.HeartbeatRetained
	if live {
		v.LastSeen = o.HeartbeatAt
	}
	age := now.Sub(v.LastSeen)
	fresh := age <= v.StaleAfter && (live || -age <= v.StaleAfter)
	if o.Status == StatusOffline && !(live && fresh && o.HeartbeatAt.After(o.StatusAt)) {
		v.State, v.Why = Offline, "status offline"
		return v
	}
	switch {
	case fresh:
		v.State = Online
	case age > v.StaleAfter:
		v.State = Stale
		v.Why = fmt.Sprintf("last heartbeat %v ago, over %d intervals of %v", age.Round(time.Millisecond), StaleIntervals, hb.Interval)
	default:
		v.State = Stale
		v.Why = fmt.Sprintf("heartbeat dated %v ahead of this clock: the vehicle's clock is wrong, or this one", (-age).Round(time.Millisecond))
	}
	return v
}
