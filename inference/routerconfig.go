package inference

import (
	"time"
)

// RouterConfig sizes and tunes a router.
type RouterConfig struct {
	// Requests in flight at once; beyond, requests get ReasonOverloaded.
	// 0 means 8.
	Requests int `yaml:"requests" json:"requests"`
	// Lanes are runs of one backend in flight at once (each lane is a
	// goroutine); when all are busy the backend counts as OutcomeBusy and
	// the next rung starts, instead of queueing behind runs that may be
	// stuck. 0 means as many as the backend has sessions.
	Lanes int `yaml:"lanes" json:"lanes"`
	// AnswerMargin: backends and the router work to the deadline less this
	// margin, which is left for sending the answer. 0 means 2ms.
	AnswerMargin time.Duration `yaml:"answer_margin" json:"answer_margin"`
	// PreferWait: once a less preferred backend has answered well, the
	// router waits at most this long for a more preferred one still
	// running (never past the deadline). 0 means 5ms.
	PreferWait time.Duration `yaml:"prefer_wait" json:"prefer_wait"`
	// CompareTolerance: primary and shadow diverge when any output element
	// differs by more. 0 means 0.05.
	CompareTolerance float32 `yaml:"compare_tolerance" json:"compare_tolerance"`
	// VoteTolerance: the degraded model agrees with a GPU backend when no
	// output element differs by more. It is a different, smaller network,
	// so this is loose. 0 means 0.5.
	VoteTolerance float32 `yaml:"vote_tolerance" json:"vote_tolerance"`
	// Inputs says which input values are refused before any backend sees
	// them; by default NaN and ±Inf, and values outside a declared range.
	Inputs InputChecks `yaml:"inputs" json:"inputs"`
}

func (c *RouterConfig) defaults() {
	if c.Requests <= 0 {
		c.Requests = 8
	}
	if c.AnswerMargin <= 0 {
		c.AnswerMargin = 2 * time.Millisecond
	}
	if c.PreferWait <= 0 {
		c.PreferWait = 5 * time.Millisecond
	}
	if c.CompareTolerance <= 0 {
		c.CompareTolerance = 0.05
	}
	if c.VoteTolerance <= 0 {
		c.VoteTolerance = 0.5
	}
	c.Inputs.defaults()
}
