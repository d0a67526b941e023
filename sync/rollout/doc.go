// Package rollout plans a fleet rollout: one model bundle deployed to
// one role over a list of vehicles in waves, halted by a circuit breaker
// when too many of them fail. It is a pure core in the manner of
// watchdog.Machine: no goroutines, no clock, no I/O. Time comes in as
// `now`; events come in as method calls; the decisions come out as
// Actions (commands to send) and as entries of the rollout's log, which
// says what was decided, when, and why. A test (purity_test.go) keeps it
// so.
//
// # A rollout
//
// New takes a Spec (bundle, role, vehicles, waves, breaker threshold,
// options) and plans the waves: the waves are cumulative percentages of
// the vehicles in their listed order (1,10,50,100 %), each wave reaching
// ceil(p x n) vehicles and at least one more than the wave before; a wave
// that would hold none is dropped. The Rollout it returns is the whole
// state, and its JSON form (Encode, Decode) is what sync/rollout/store
// keeps on disk.
//
// The shell (sync/rollout/runner) calls, at each step:
//
//   - Observe for each vehicle's latest deploy report
//     (sync/rollout/deploywire.Report): a committed report makes the
//     vehicle committed; a failed one (rolled_back, refused, failed,
//     timed_out) makes it failed; anything else, in progress. Only
//     reports on this rollout's bundle and role count, and, but for
//     committed, only on a deployment this rollout started (the report
//     names the command's correlation id).
//   - Acknowledge for each answer to a command it sent: ok leaves the
//     rest to the reports; rejected, bad_args and failed fail the
//     vehicle; no answer, busy and unsafe_while_moving leave it to be
//     sent again ResendAfter later.
//   - Plan, which fails the vehicles that took longer than
//     VehicleTimeout, finishes the current wave when every vehicle of
//     it is committed or failed, starts the next one (the rollout is
//     Done after the last), and returns the model-deploy commands to
//     send: to each vehicle of a wave just started (but one that already
//     reported the bundle committed), and again to one that has not
//     taken its command. After an abort with rollback it returns
//     model-rollback commands instead.
//
// The operator's Pause, Resume and Abort come in the same way.
//
// # The breaker
//
// Whenever a vehicle gets an outcome, the breaker judges: once at least
// MinVehicles vehicles have an outcome (committed or failed), the
// rollout halts when the failed ones are more than MaxFailures of them
// (failed x 100 % > MaxFailures x outcomes). Since a wave starts only
// when the one before has finished, the rollout halts in the first wave
// that crosses the threshold, and no vehicle of a later wave is sent
// anything. A paused rollout's breaker still judges.
//
// # Parts
//
//   - spec.go: Spec, Validate, Percent, ParsePercent, ParseWaves, the
//     wave plan.
//   - rollout.go: Rollout, Vehicle, Wave, Entry, the statuses and
//     outcomes, New, Encode, Decode, Count.
//   - planner.go: Observe, Acknowledge, Plan, Pause, Resume, Abort,
//     Finished, the breaker, CorrelationID.
//   - deploywire: the report a vehicle publishes and the model-deploy and
//     model-rollback arguments, for the vehicle and the fleet alike.
//   - store: the directory of rollouts, one JSON file each.
//   - runner: the loop that runs a rollout over MQTT.
package rollout
