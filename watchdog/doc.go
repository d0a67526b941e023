// Package watchdog decides, request by request, which inference backend
// serves. It is a pure state machine over backend states (healthy, suspect,
// failed, probation), redundancy policies (hot, warm, cold) and fail-back
// rules. Time and events come in; plans and decisions come out. It never
// starts a goroutine, reads the clock or does I/O, so its tests replay
// scripted scenarios against a fake clock without sleeping.
//
// # Usage
//
// A shell (in the agent) owns one Machine and one goroutine that feeds it.
// It passes the time with every event and executes what comes back:
//
//	m, err := watchdog.New(cfg)          // cfg from watchdog.DefaultConfig()
//	plan.Store(ptr(m.Plan()))            // the router's atomic.Pointer[Plan]
//	for {
//		var ev watchdog.Event
//		select {
//		case ev = <-results:             // RequestResult, RunResult (canaries), Comparison, Vote
//		case ev = <-health:              // HealthSample from hw
//		case ev = <-commands:            // Command from the socket or the fleet
//		case <-ticker.C:
//			ev = watchdog.Tick{}
//		}
//		rd := m.Step(clock.Now(), ev)
//		if rd.PlanChanged {
//			plan.Store(ptr(rd.Plan))     // a copy: Plan is a value
//		}
//		runCanaries(rd.Canaries)         // off the serving path
//		record(rd.Transitions, rd.Alerts) // telemetry; copy, the slices are reused
//	}
//
// Tick every few tens of milliseconds (at most half of CanaryInterval): ticks
// end cool-downs, emit due canaries, retry deferred fail-backs and close
// arbitration windows.
//
// # The plan and the router
//
// Plan is an immutable value without maps or slices. For each request the
// router loads the current plan once and:
//
//   - if Plan.MRM, answers NO_RESULT at once with Plan.Reason;
//   - arms Starts[:NumStarts] in order: each backend starts Delay after the
//     request arrived, unless an acceptable answer is already at hand, and
//     at once when every backend started so far has failed (error or
//     invalid output);
//   - serves the acceptable answer of the backend earliest in Prefer
//     (Prefer[0] is the active rung). When a less preferred answer arrives
//     first, it may wait for the more preferred ones, but never past the
//     deadline minus its own margin; answers that are NaN/Inf or outside the
//     model's declared range are never acceptable;
//   - if Plan.Compare and both primary and shadow answered, compares them
//     with its tolerance and reports a Comparison;
//   - if Plan.Vote and all three answered, reports VoteOf(...) of the three
//     pairwise comparisons (the degraded model is smaller: use a tolerance
//     that fits it);
//   - once every backend it started is over, reports one RequestResult with
//     a RunResult for each of them: RunOK with the latency and output
//     validity, RunFailed on an error (or when the backend is not loaded),
//     RunDeadline when it stopped waiting (the run is abandoned, not
//     cancelled: a hung GPU kernel cannot be stopped). Every run ends by the
//     request's deadline, so the report is never later than that.
//
// Canary probes run off the serving path, with the plan's deadline; their
// answers come back as RunResult with Canary set. A RunResult without Canary
// is judged on its own, as one run of a request that nothing else ran on.
//
// # Plans of the policies
//
// The ladder is primary → shadow → degraded. Only healthy and suspect
// backends are usable; the first usable one is the active rung. With p, s and
// d the usable backends among primary, shadow and degraded:
//
//	hot:   p@0, s@0, d@last-resort
//	warm:  p@0, s@hedge, d@last-resort
//	cold:  p@0, d@last-resort         (the shadow stands in for a missing p)
//
// The degraded CPU model is always loaded and always in the plan while it is
// usable, so the router always has an answer coming. Its last-resort delay is
// the latest start that still answers in time:
//
//	last-resort = Deadline − p95(degraded) − HedgeMargin
//
// and it is 0 (start at once) when the degraded model is the only rung, when
// every GPU backend started is suspect, or during an arbitration window. The
// warm hedge delay is
//
//	hedge = min(HedgeFactor × p95(first GPU rung), Deadline − p95(second) − HedgeMargin)
//
// and 0 when the first GPU rung is suspect. A p95 is the nearest-rank 95th
// percentile of the last 32 latencies (a deadline miss counts as the
// deadline; InitialLatency until there are any). Delays are never negative
// and are rounded down to 0.5ms so that jitter does not publish a new plan
// on every result. Starts are ordered by delay; Prefer is in ladder order.
// Compare is set when primary and shadow both start, Vote when all three do.
//
// Every plan also carries a kill grace per backend (Plan.KillGrace): how
// long a run may stay busy past its deadline before the backend's worker
// process is killed and replaced. It is the time the watchdog takes to
// judge the backend hung from the misses of one wedged run,
//
//	kill grace = MissThreshold × max(Deadline, p95(backend))
//
// rounded down to 0.5ms (99ms with the defaults): at one request a
// deadline, the wedged backend has missed MissThreshold deadlines, and been
// failed, by the time its worker is killed.
//
// # Backend states
//
//	healthy → suspect     first deadline miss, run error, invalid output,
//	                      2-of-3 blame; thermal throttling or temperature
//	                      (GPU backends)
//	suspect → healthy     RecoverAfter good results in a row (and, for GPU
//	                      backends, no thermal warning)
//	healthy/suspect → failed
//	                      MissThreshold consecutive deadline misses;
//	                      ceil(ErrorRate × ErrorWindow) faults (errors, misses,
//	                      invalid outputs) in the last ErrorWindow observations;
//	                      InvalidThreshold invalid outputs in the window;
//	                      DivergenceThreshold blames in the window
//	any → failed          GPU lost, fatal Xid, uncorrected ECC (both GPU
//	                      backends at once); operator force-out
//	failed → probation    CoolDown elapsed (not while forced out, nor while a
//	                      GPU fault is latched); operator clear
//	probation → failed    a bad canary (error, late, invalid); a GPU fault
//	probation → healthy   CanaryCount good canaries, the first and the last
//	                      at least CanaryMinSpan apart (GPU backends also
//	                      wait for the GPU to cool), subject to the switch cap
//
// A threshold reached from healthy fails the backend in one transition. Every
// transition carries a reason ("3 consecutive deadline misses", "gpu lost",
// "operator force-out"). Results of a failed or probation backend that are
// not canaries are stragglers from before it failed and are ignored; so are
// canary answers of a backend not in probation. Health samples are levels: a
// GPU fault stays latched until a sample without it.
//
// # Faults of the request
//
// A bad frame from the supervisor (or anything else wrong with one request)
// can make every backend fail it: NaN in, NaN out. Blaming each backend for
// it would cost the vehicle its models for one frame, so the runs of a
// request are judged together. A run that failed with a run error, or with an
// invalid output (NaN, Inf and out of range are one way of failing), is a
// fault of the request when
//
//   - no usable backend that ran on the request answered well, and
//   - another usable backend that ran failed it the same way.
//
// Such runs are counted once per request (Counters.RequestFaults), alerted
// (AlertRequestFault, at most once a second with the count in between) and
// otherwise ignored: no window, no latency sample, no state change, not even
// a break in a suspect backend's run of good results. Every other run is
// applied as a RunResult of its own. So a backend is blamed only when its
// peers on the same request did not fail the same way:
//
//	primary NaN, shadow NaN, degraded NaN     request fault; nobody blamed
//	primary NaN, shadow NaN, degraded ok      primary and shadow blamed
//	primary error, shadow NaN, degraded NaN   primary blamed; the NaNs are
//	                                          the request's
//	primary error, shadow NaN, degraded ok    both blamed (not the same way)
//	deadline misses, however many             always the backend's own
//	degraded NaN, running alone               degraded blamed
//
// Runs of backends that are not usable (stragglers from requests begun
// before they failed) are ignored and are nobody's peers. Faults that are
// truly common to the backends still reach them: a lost GPU through health
// samples, and anything that fails both GPU backends through the degraded
// model, which the router starts at once when every backend started so far
// failed, and which then answers well or not. A fault that made every rung
// fail every request the same way would blame nobody; each such request is
// answered NO_RESULT (all backends failed) and counted as a request fault.
//
// # Divergence and voting
//
// With two answers nobody can tell which one is wrong: a Comparison that
// diverged blames neither backend. It is counted, alerted once per
// arbitration window, and opens the window (ArbitrateFor): the degraded model
// starts at once on every request, so that the next divergence comes with a
// third answer. Meanwhile the router keeps preferring the primary. A Vote
// with an outlier blames it (healthy → suspect, failed at
// DivergenceThreshold blames in the window); an inconclusive vote only
// alerts.
//
// # Switches and the flapping cap
//
// A switch is a change of the active rung, or into or out of MRM: a
// failover when it moves down the ladder, a fail-back when it moves up.
// MaxSwitchesPerMinute caps them over any rolling minute, but failing away
// from a broken backend is never delayed (safety first): only fail-backs
// wait. A fail-back is taken only when the minute has room for it and for the
// failover that would follow if the backend broke again (count + 2 ≤ cap), so
// a flapping backend never exceeds the cap; it stays in probation, still
// probed, until there is room. Several different backends failing in turn
// can pass the cap, since their failovers never wait. Leaving MRM never
// waits.
//
// # Operator commands
//
// CmdForceOut fails a backend ("operator force-out") and keeps it failed,
// without cool-down or probation, until CmdClear. CmdClear moves a failed
// backend to probation at once, so it must still pass its canaries; on a GPU
// backend it forgets a latched GPU fault. CmdSetPolicy switches the policy;
// the active rung does not change with it.
//
// # MRM
//
// When no backend is usable the plan has no starts, MRM is set and Reason
// names each backend's state and reason. The router answers NO_RESULT; the
// supervisor starts its minimal-risk manoeuvre. Backends come back through
// probation as usual.
//
// # Files
//
// backend.go names the backends, states and policies; config.go holds
// Config, its defaults and validation; events.go the events; states.go the
// per-backend rules; request.go the attribution of a request's runs;
// plan.go the plan and its delays; latency.go the latency
// estimate; machine.go Step, time-driven rules, switch accounting and
// accessors; ready.go what Step returns. The scenario scripts in testdata
// are run by scenario_test.go, which documents their language.
package watchdog
