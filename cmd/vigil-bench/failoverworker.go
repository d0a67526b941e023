package main

import (
	"fmt"
	"io"
	"time"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
)

// The worker scenario: with primary and shadow in worker processes
// (--isolation process), the primary's worker is wedged for good (a run
// that never returns and ignores Terminate), crashed (abort under a run)
// and made to leak until its memory limit. Each time the daemon's side
// must kill or reap it and start a fresh one, the shadow answering
// meanwhile, and the primary must come back through probation.

func workerScenarios(f failoverFlags) []scenario {
	if f.isolation != inference.Process {
		return nil
	}
	hold, rec := 150, 150
	if f.quick {
		hold, rec = 60, 90
	}
	var out []scenario
	for _, k := range []inference.FaultKind{inference.FaultWedge, inference.FaultCrash, inference.FaultLeak} {
		out = append(out, scenario{name: "worker-" + string(k), fault: inject(watchdog.Primary, inference.Fault{Kind: k}), hold: hold, recover: rec, worker: true})
	}
	return out
}

// workerTally counts the ends of the GPU rungs' workers over a policy's
// run and the time each replacement took (end → warm and in service).
type workerTally struct {
	start    [watchdog.NumBackends]inference.WorkerStats
	restarts [watchdog.NumBackends]int64
	times    []time.Duration
	back     int // worker scenarios after which the primary was healthy again
	scenes   int
}

func newWorkerTally(backends [watchdog.NumBackends]*inference.Backend) *workerTally {
	t := &workerTally{}
	for b, be := range backends {
		if st, ok := be.WorkerStats(); ok {
			t.start[b], t.restarts[b] = st, st.Restarts
		}
	}
	return t
}

// observe records the restarts since the last call, and, after a worker
// scenario, whether the primary is healthy again and why its worker last
// ended.
func (t *workerTally) observe(w io.Writer, l *benchLadder, backends [watchdog.NumBackends]*inference.Backend, sc scenario) {
	for b, be := range backends {
		st, ok := be.WorkerStats()
		if !ok || st.Restarts == t.restarts[b] {
			continue
		}
		t.restarts[b] = st.Restarts
		t.times = append(t.times, st.LastRestart)
	}
	if !sc.worker {
		return
	}
	t.scenes++
	state := l.shell.Status().Backends[watchdog.Primary].State
	if state == watchdog.Healthy {
		t.back++
	}
	st, _ := backends[watchdog.Primary].WorkerStats()
	fmt.Fprintf(w, "  %s: primary %s after recovery; its worker last ended %q, replaced in %.1f ms\n", sc.name, state, st.LastEnd, ms(st.LastRestart))
}

// kills is the workers of the GPU rungs that ended (killed or dead) since
// the tally began.
func (t *workerTally) kills(backends [watchdog.NumBackends]*inference.Backend) int64 {
	var n int64
	for b, be := range backends {
		if st, ok := be.WorkerStats(); ok {
			n += st.Kills + st.Crashes - t.start[b].Kills - t.start[b].Crashes
		}
	}
	return n
}

// restartMs is the slowest replacement seen, in ms (0 when none).
func (t *workerTally) restartMs() float64 {
	var m time.Duration
	for _, d := range t.times {
		m = max(m, d)
	}
	return ms(m)
}

// ends is the number of workers of the GPU rungs that have ended so far.
func (t *workerTally) ends(backends [watchdog.NumBackends]*inference.Backend) int64 {
	var n int64
	for _, be := range backends {
		if st, ok := be.WorkerStats(); ok {
			n += st.Kills + st.Crashes
		}
	}
	return n
}

// holdUntilEnded keeps a worker scenario's fault on, a quarter of its hold
// at a time and for up to ten holds more, until a worker has ended: a leak
// takes as long as the machine needs to touch the memory limit's worth of
// pages.
func (t *workerTally) holdUntilEnded(d *driver, st *frameStats, backends [watchdog.NumBackends]*inference.Backend, before int64, hold int) {
	for range 40 {
		if t.ends(backends) > before {
			return
		}
		d.run(max(hold/4, 1), st)
	}
}
