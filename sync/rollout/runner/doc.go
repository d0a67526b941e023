// Package runner is the shell around a rollout.Rollout: it runs one
// rollout stored in a store.Dir until it is finished or interrupted,
// feeding it the vehicles' deploy reports and the answers to its
// commands, and sending the commands it plans.
//
// Run's loop, one step at a time: under the rollout's lock (store.Dir's
// Update) it loads the latest stored state (so a pause or an abort
// another process stored is seen at the next step), applies every
// report (Reports.Latest; the rollout ignores what it has seen) and the
// answers that came in (rollout.Acknowledge), asks for the plan
// (rollout.Plan), and stores the result; only then does it send the
// planned commands, on goroutines it owns, at most Parallel at a time. A
// step runs when an answer or a report comes, and every Tick for the
// timeouts. The plan records each command as sent before it goes out,
// so a runner killed at any point resumes (Run again) from the stored
// state: a command that went out unanswered, or never went, is sent
// again when its ResendAfter has passed.
//
// The parts:
//
//   - runner.go: Run, Config, and the small interfaces it consumes,
//     Commander (send one command, return the answer) and Reports (the
//     latest report of each vehicle, and a signal when one arrives).
//   - reports.go: ReportWatcher, the Reports of a subscription to
//     deploywire.ReportFilter on a connection of its own (clean session;
//     the reports are retained, so they all arrive again after a
//     reconnection or a restart).
//   - commander.go: SenderCommander, the Commander over sync/cmdlink's
//     Sender: signed envelopes, the vehicle's response awaited.
package runner
