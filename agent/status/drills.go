package status

// DrillsStatus is the drills section: present when the configuration
// allows drills (drills.allowed).
type DrillsStatus struct {
	// Running is the drill going on, if any.
	Running *DrillRunning `json:"running,omitempty"`
	// Last is the newest report kept, if any; Kept how many are kept.
	Last *DrillLast `json:"last,omitempty"`
	Kept int        `json:"kept"`
}

// DrillRunning is a drill going on: its report's id, its name, its phase.
type DrillRunning struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Phase string `json:"phase"`
}

// DrillLast is a kept report's outline (`vigilctl drill report <id>`
// shows it whole).
type DrillLast struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Started string `json:"started"` // RFC 3339
	Passed  bool   `json:"passed"`
	Aborted string `json:"aborted,omitempty"`
}
