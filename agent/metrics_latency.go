package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
)

// latencyBuckets are the answer latency histograms' upper bounds, in
// seconds, dense around the 33 ms frame deadline (watchdog.deadline's
// default): 1 to 10 ms is where a healthy model answers (the demo models
// on a CPU thread, a primary on a GPU); 15 to 30 ms is an answer that
// needed the next rung or a slow run, approaching the deadline less the
// router's margin; 33 ms is the deadline itself, so the bucket le="0.033"
// counts the answers that made it and everything above missed; 40 to
// 250 ms tell a near miss from a stall. The bounds are the same on every
// vehicle so that a fleet's histograms add up; a vehicle configured with
// another deadline still gets its misses from vigil_deadline_misses_total.
var latencyBuckets = []float64{.001, .002, .005, .010, .015, .020, .025, .030, .033, .040, .050, .075, .100, .250}

// Outcomes of an answer, the histograms' outcome label.
const (
	outcomeOK       = "ok"        // served by the plan's active rung
	outcomeFailover = "failover"  // served by another rung than the active one
	outcomeNoResult = "no_result" // NO_RESULT, any reason; backend "none"
)

// answerLatency is the request path's part of the metrics: an
// inference.AnswerObserver over vigil_answer_latency_seconds, with every
// series it may touch resolved when it is made, so that an answer costs
// one histogram observation (atomic adds: no lock, no allocation, no
// label lookup).
type answerLatency struct {
	vec      *prometheus.HistogramVec
	ok       [watchdog.NumBackends]prometheus.Observer
	failover [watchdog.NumBackends]prometheus.Observer
	noResult prometheus.Observer
}

func newAnswerLatency() *answerLatency {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vigil_answer_latency_seconds",
		Help:    "Time from a request's arrival at the router to its answer, by the backend that served it (none for NO_RESULT) and outcome (ok: the plan's active rung; failover: another rung; no_result). Requests refused for their inputs are not answers and are not counted.",
		Buckets: latencyBuckets,
	}, []string{"backend", "outcome"})
	l := &answerLatency{vec: vec, noResult: vec.WithLabelValues("none", outcomeNoResult)}
	for b := range watchdog.NumBackends {
		name := watchdog.Backend(b).String()
		l.ok[b] = vec.WithLabelValues(name, outcomeOK)
		l.failover[b] = vec.WithLabelValues(name, outcomeFailover)
	}
	return l
}

// ObserveAnswer records a's latency; it runs on the request path.
func (l *answerLatency) ObserveAnswer(a inference.AnswerSummary) {
	s := a.Latency.Seconds()
	switch {
	case a.Status != inference.StatusOK || int(a.ServedBy) >= len(l.ok):
		l.noResult.Observe(s)
	case a.ServedBy == a.Active:
		l.ok[a.ServedBy].Observe(s)
	default:
		l.failover[a.ServedBy].Observe(s)
	}
}
