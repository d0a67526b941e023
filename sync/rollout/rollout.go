package rollout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/vigil-av/vigil/sync/rollout/deploywire"
)

// Status is where a rollout stands.
type Status string

const (
	// Running: waves go out as the previous ones finish.
	Running Status = "running"
	// Paused by the operator: nothing new is sent; reports, timeouts and
	// the breaker still count.
	Paused Status = "paused"
	// Done: every wave finished without tripping the breaker.
	Done Status = "done"
	// Halted by the breaker; nothing more is sent.
	Halted Status = "halted"
	// Aborted by the operator; rollbacks go out if asked for.
	Aborted Status = "aborted"
)

// Outcome is where one vehicle of a rollout stands.
type Outcome string

const (
	// Waiting: its wave has not started.
	Waiting Outcome = "waiting"
	// Sent: model-deploy went out; neither accepted nor reported on yet.
	Sent Outcome = "sent"
	// InProgress: accepted, or reported in a state short of the end.
	InProgress Outcome = "in_progress"
	// Committed: the vehicle reported the bundle committed.
	Committed Outcome = "committed"
	// Failed: it reported a failed state (rolled back, refused, failed,
	// timed out), refused the command, or timed out on the fleet's side.
	Failed Outcome = "failed"
)

// Done reports whether o is an outcome the waves and the breaker count:
// committed or failed.
func (o Outcome) Done() bool { return o == Committed || o == Failed }

// Wave is one step of a rollout.
type Wave struct {
	// Percent is the cumulative share of the vehicles this wave reaches.
	Percent Percent `json:"percent"`
	// Vehicles are those it adds, in the spec's order.
	Vehicles []string  `json:"vehicles"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Vehicle is one vehicle's part in a rollout.
type Vehicle struct {
	ID      string  `json:"id"`
	Wave    int     `json:"wave"` // 1-based
	Outcome Outcome `json:"outcome"`
	// State, Reason and Updated are from its latest report on this
	// rollout's deployment (empty before one).
	State   deploywire.State `json:"state,omitempty"`
	Reason  string           `json:"reason,omitempty"`
	Updated time.Time        `json:"updated,omitzero"`
	// Why says what decided a failed outcome.
	Why string `json:"why,omitempty"`
	// Deploy is the model-deploy command's history.
	Deploy Attempts `json:"deploy"`
	// Rollback is model-rollback's, after an abort that asked for it.
	Rollback Attempts `json:"rollback,omitzero"`
}

// Attempts is the history of one command to one vehicle.
type Attempts struct {
	// N counts the envelopes sent; each has its own correlation id
	// (CorrelationID).
	N     int       `json:"n,omitempty"`
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// Code is the latest response's code ("" while none came), Message
	// its message.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Settled: no more envelopes are to go (accepted, refused, or given
	// up).
	Settled bool `json:"settled,omitempty"`
}

// Entry is one decision of the log: when, what, and why.
type Entry struct {
	At      time.Time `json:"at"`
	What    What      `json:"what"`
	Wave    int       `json:"wave,omitempty"`
	Vehicle string    `json:"vehicle,omitempty"`
	Why     string    `json:"why"`
}

// What names a kind of decision.
type What string

// The decisions a rollout logs.
const (
	LogCreated        What = "created"
	LogWaveStarted    What = "wave_started"
	LogWaveFinished   What = "wave_finished"
	LogSend           What = "send"
	LogResend         What = "resend"
	LogAccepted       What = "accepted"
	LogNoAnswer       What = "no_answer"
	LogCommitted      What = "committed"
	LogFailed         What = "failed"
	LogBreaker        What = "breaker_tripped"
	LogDone           What = "done"
	LogPaused         What = "paused"
	LogResumed        What = "resumed"
	LogAborted        What = "aborted"
	LogRollback       What = "rollback"
	LogRollbackAnswer What = "rollback_answer"
)

// FormatVersion is the version of a rollout's persisted form.
const FormatVersion = 1

// Rollout is a rollout's whole state: what was asked, where every
// vehicle stands, and every decision taken. Its JSON form (Encode) is
// what the rollouts directory holds.
type Rollout struct {
	V       int       `json:"v"`
	Spec    Spec      `json:"spec"`
	Created time.Time `json:"created"`
	Status  Status    `json:"status"`
	Ended   time.Time `json:"ended,omitzero"`
	Waves   []Wave    `json:"waves"`
	// Current is the 1-based number of the latest wave started; 0 before
	// the first.
	Current  int       `json:"current"`
	Vehicles []Vehicle `json:"vehicles"`
	// Rollback: the abort asked for model-rollback to every vehicle sent
	// the bundle and not failed.
	Rollback bool    `json:"rollback,omitempty"`
	Log      []Entry `json:"log"`

	index map[string]int
}

// New validates spec and plans its waves; the rollout starts Running,
// with nothing sent: Plan sends the first wave.
func New(spec Spec, now time.Time) (*Rollout, error) {
	spec.Vehicles = append([]string(nil), spec.Vehicles...)
	spec.Waves = append([]Percent(nil), spec.Waves...)
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	r := &Rollout{V: FormatVersion, Spec: spec, Created: now, Status: Running, Waves: planWaves(spec.Waves, spec.Vehicles)}
	var plan []string
	reached := 0
	for i, w := range r.Waves {
		for _, v := range w.Vehicles {
			r.Vehicles = append(r.Vehicles, Vehicle{ID: v, Wave: i + 1, Outcome: Waiting})
		}
		reached += len(w.Vehicles)
		plan = append(plan, fmt.Sprintf("%d (%v)", reached, w.Percent))
	}
	waves := "1 wave"
	if len(r.Waves) > 1 {
		waves = fmt.Sprintf("%d waves", len(r.Waves))
	}
	why := fmt.Sprintf("%s version %d (%.12s) to %s on %s in %s reaching %s; breaker: more than %v failed, judged from %d outcomes",
		spec.Bundle.Name, spec.Bundle.Version, spec.Bundle.Hash, spec.Role, vehicles(len(spec.Vehicles)), waves,
		strings.Join(plan, ", "), spec.MaxFailures, spec.MinVehicles)
	if len(r.Waves) < len(spec.Waves) {
		why += fmt.Sprintf(" (%d of the %d waves asked for would have held no vehicle)", len(spec.Waves)-len(r.Waves), len(spec.Waves))
	}
	r.log(now, LogCreated, 0, "", why)
	return r, nil
}

// Encode returns the rollout's persisted form.
func (r *Rollout) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return nil, fmt.Errorf("rollout %s: encode: %w", r.Spec.ID, err)
	}
	return append(b, '\n'), nil
}

// ErrCorrupt is what Decode wraps when the persisted form is not a
// rollout this version wrote.
var ErrCorrupt = errors.New("rollout: not a valid rollout file")

// Decode reads a rollout's persisted form and checks that it holds
// together: a known version, a valid spec, and the vehicles and waves
// that spec plans.
func Decode(raw []byte) (*Rollout, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var r Rollout
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := d.Decode(new(json.RawMessage)); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the rollout", ErrCorrupt)
	}
	if r.V != FormatVersion {
		return nil, fmt.Errorf("%w: version %d; this vigil-fleet reads version %d", ErrCorrupt, r.V, FormatVersion)
	}
	if err := r.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := r.consistent(); err != nil {
		return nil, fmt.Errorf("%w: rollout %s: %v", ErrCorrupt, r.Spec.ID, err)
	}
	return &r, nil
}

func (r *Rollout) consistent() error {
	switch r.Status {
	case Running, Paused, Done, Halted, Aborted:
	default:
		return fmt.Errorf("status %q", r.Status)
	}
	if len(r.Vehicles) != len(r.Spec.Vehicles) {
		return fmt.Errorf("%d vehicles, the spec lists %d", len(r.Vehicles), len(r.Spec.Vehicles))
	}
	plan := planWaves(r.Spec.Waves, r.Spec.Vehicles)
	if len(r.Waves) != len(plan) {
		return fmt.Errorf("%d waves, the spec plans %d", len(r.Waves), len(plan))
	}
	if r.Current < 0 || r.Current > len(r.Waves) {
		return fmt.Errorf("current wave %d of %d", r.Current, len(r.Waves))
	}
	i := 0
	for wi, w := range plan {
		if r.Waves[wi].Percent != w.Percent || !slices.Equal(r.Waves[wi].Vehicles, w.Vehicles) {
			return fmt.Errorf("wave %d is not the one the spec plans", wi+1)
		}
		for _, id := range w.Vehicles {
			v := r.Vehicles[i]
			if v.ID != id || v.Wave != wi+1 {
				return fmt.Errorf("vehicle #%d: %q in wave %d, the plan has %q in wave %d", i+1, v.ID, v.Wave, id, wi+1)
			}
			switch v.Outcome {
			case Waiting, Sent, InProgress, Committed, Failed:
			default:
				return fmt.Errorf("vehicle %s: outcome %q", v.ID, v.Outcome)
			}
			i++
		}
	}
	return nil
}

// Vehicle returns the named vehicle's part, or nil when it is not in the
// rollout.
func (r *Rollout) Vehicle(id string) *Vehicle {
	if r.index == nil {
		r.index = make(map[string]int, len(r.Vehicles))
		for i, v := range r.Vehicles {
			r.index[v.ID] = i
		}
	}
	i, ok := r.index[id]
	if !ok {
		return nil
	}
	return &r.Vehicles[i]
}

func (r *Rollout) log(now time.Time, what What, wave int, vehicle, why string) {
	r.Log = append(r.Log, Entry{At: now, What: what, Wave: wave, Vehicle: vehicle, Why: why})
}

// Counts are how many vehicles stand where.
type Counts struct {
	Waiting, Sent, InProgress, Committed, Failed int
}

// Outcomes is how many vehicles have an outcome the breaker counts.
func (c Counts) Outcomes() int { return c.Committed + c.Failed }

// Count counts the vehicles by outcome, of wave w (1-based), or of all
// when w is 0.
func (r *Rollout) Count(w int) Counts {
	var c Counts
	for _, v := range r.Vehicles {
		if w != 0 && v.Wave != w {
			continue
		}
		switch v.Outcome {
		case Waiting:
			c.Waiting++
		case Sent:
			c.Sent++
		case InProgress:
			c.InProgress++
		case Committed:
			c.Committed++
		case Failed:
			c.Failed++
		}
	}
	return c
}
