package deploy

import "time"

// Status is what status pages show of a deployment.
type Status struct {
	Saved
	// Deadline is when the live state times out; zero when over.
	Deadline time.Time
	// Download is the latest DownloadProgress (zero outside Downloading).
	Download Progress
}

// Status returns the deployment's status.
func (d *Deployment) Status() Status {
	st := Status{Saved: d.s, Deadline: d.deadline}
	if d.s.State == Downloading {
		st.Download = d.download
	}
	return st
}

// Save returns the state to persist.
func (d *Deployment) Save() Saved { return d.s }

// State is the current state.
func (d *Deployment) State() State { return d.s.State }

// Spec is what is deployed, with its effective options.
func (d *Deployment) Spec() Spec { return d.s.Spec }

// Done reports whether the deployment reached its outcome.
func (d *Deployment) Done() bool { return d.s.State.Terminal() }

// Config is the configuration the deployment runs with.
func (d *Deployment) Config() Config { return d.cfg }
