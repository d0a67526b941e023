// Package deploy decides the lifecycle of a model deployment on the
// vehicle: one bundle for one role, from its download to its commit or
// rollback. It is a pure state machine: events come in with the time,
// actions come out for a shell to execute. It never starts a goroutine,
// reads the clock or does I/O (purity_test.go checks), and imports only
// the standard library, so its tests replay scripted scenarios against a
// fake clock without sleeping.
//
// # Usage
//
// The daemon (the shell) keeps one Deployment per role with a deployment
// under way, and one goroutine that feeds them. On a verified model-deploy
// command it calls New; after a restart it reads the saved state and calls
// Restore, then steps Restarted. After every step it persists Save when
// Ready.Changed — before executing the actions, so that a crash between
// the two is repaired by Restarted asking again:
//
//	d, rd, err := deploy.New(cfg, spec, clock.Now()) // or Restore + Step(Restarted{...})
//	for {
//		if rd.Changed {
//			writeAtomically(path, d.Save())        // temp file, fsync, rename, fsync dir
//		}
//		for _, a := range rd.Actions {
//			execute(a)                             // answers come back as events
//		}
//		if rd.Rejected != nil {
//			answer(rd.Rejected)                    // to the operator or the fleet, if a command
//		}
//		var ev deploy.Event
//		select {
//		case ev = <-answers:                       // DownloadDone, VerifyDone, InstallDone, ...
//		case ev = <-trialSamples:                  // TrialSample from the trial runner
//		case ev = <-health:                        // Served, WatchdogFailed, WatchdogSuspect
//		case ev = <-commands:                      // Command, Newer
//		case ev = <-motion:                        // Motion from the supervisor
//		case <-ticker.C:                           // every few seconds
//			ev = deploy.Tick{}
//		}
//		rd = d.Step(clock.Now(), ev)
//	}
//
// An action that asks for an answer names it (Download: DownloadDone or
// DownloadFailed, and so on); the answer may come on any later step. An
// action without an answer (DropDownload, StopTrial, Discard, Reject,
// Report) is done as well as it can be and is idempotent. StartNewer asks
// the shell to start the newer deployment, with New, after this step's
// other actions. Report carries each change of state with its reason, for
// status, events and telemetry.
//
// # States
//
// Each live state waits for one answer (or for time), under a timeout
// (Config.Timeouts; every live state has one, running from entering the
// state or from the daemon's restart in it):
//
//	state         entered with              waits for
//	downloading   Download                  DownloadDone | DownloadFailed (DownloadProgress meanwhile)
//	verifying     Verify                    VerifyDone | VerifyRefused
//	verified      Install                   InstallDone | InstallFailed
//	staged        DropDownload, StartTrial  TrialStarted | TrialStartFailed
//	trial         (samples)                 the trial's verdict
//	promoting     Promote                   PromoteDone | PromoteFailed
//	  held        (nothing)                 Motion{Parked: true}
//	promoted      (the health gate)         the gate's verdict, WatchdogFailed
//	committing    Commit                    CommitDone | CommitFailed
//	rolling_back  Rollback                  RollbackDone | RollbackFailed
//
// The outcomes are committed, rolled_back, trial_failed, refused, failed,
// timed_out, aborted and replaced. A deployment reaches exactly one and
// stays in it.
//
// # Transitions
//
//	from            on                                   to            actions
//	(New)                                                downloading   Download
//	downloading     DownloadDone                         verifying     Verify
//	downloading     DownloadFailed                       failed        cleanup
//	verifying       VerifyDone                           verified      Install
//	verifying       VerifyRefused                        refused       cleanup
//	verified        InstallDone                          staged        DropDownload, StartTrial
//	verified        InstallFailed (Refused)              refused       cleanup
//	verified        InstallFailed                        failed        cleanup
//	staged          skip trial (at once)                 promoting     Promote, or held
//	staged          TrialStarted                         trial
//	staged          TrialStartFailed                     trial_failed  cleanup, quarantined
//	trial           the verdict passes                   promoting     StopTrial, Promote or held
//	trial           the verdict fails                    trial_failed  cleanup, quarantined
//	promoting held  Motion{Parked: true}                 promoting     Promote
//	promoting       PromoteDone                          promoted
//	promoting       PromoteFailed, not Swapped           failed        Reject
//	promoting       PromoteFailed, Swapped               rolling_back  Rollback
//	promoted        the gate passes                      committing    Commit
//	promoted        WatchdogSuspect                      promoted      (the gate's counts start over)
//	promoted        WatchdogFailed                       rolling_back  Rollback
//	promoted        Command rollback                     rolling_back  Rollback
//	committing      CommitDone                           committed
//	committing      CommitFailed                         failed
//	rolling_back    RollbackDone                         rolled_back
//	rolling_back    RollbackFailed                       failed
//	before the swap Command abort                        aborted       cleanup
//	before the swap Newer                                replaced      cleanup, StartNewer
//	before the swap its timeout                          timed_out     cleanup
//	promoting       its timeout (not held)               rolling_back  Rollback
//	promoted        its timeout                          rolling_back  Rollback
//	committing      its timeout                          timed_out
//	rolling_back    its timeout                          timed_out
//
// "Before the swap" is downloading, verifying, verified, staged, trial and
// a held promotion: the deployment's model never served. The cleanup of a
// state left early is: downloading and verifying, DropDownload; verified,
// DropDownload and Discard (the install may have finished); staged and
// trial, StopTrial and Discard; promoting (held, or failing before the
// swap), Discard. Where the table
// says quarantined, Reject{Reason} takes Discard's place. Restarts add
// their own transitions (below).
//
// A promotion that fails before the swap leaves the old model serving, and
// is quarantined (Reject). A commit that fails or times out leaves the new
// model active and uncommitted (the floor not raised); a rollback that
// fails or times out is reported and left to the operator: the watchdog
// goes on serving from the rungs it trusts.
//
// # The trial
//
// The trial runner gives the candidate a sample of serving requests
// (StartTrial.SampleRate) beside the live model, within a cost cap
// (StartTrial.CostCap), and reports a TrialSample for each: Answered (with
// Within, the candidate's Latency and the request's deadline Budget), or a
// candidate failure (RunError, Crashed, Hung, InvalidOutput). The
// tolerance is the manifest's (VerifyDone.Tolerance), else
// Config.Tolerance. The verdict:
//
//   - more than TrialMaxErrors failures fail it at once;
//   - otherwise it waits for TrialMinRequests answered samples and
//     TrialMinDuration since TrialStarted, then fails it when more than
//     floor(TrialMaxDivergence × n) of the n answers were outside the
//     tolerance, or when the LatencyQuantile of latency/budget is over
//     LatencyFraction (counted without keeping the latencies: the
//     nearest-rank q-quantile of n values is within a limit exactly when at
//     most n − ceil(q × n) of them are over it), and passes it otherwise.
//
// A candidate that hangs so that no samples come times out in trial.
//
// # The health gate
//
// From PromoteDone the new model serves. Served counts the requests it
// served; the gate passes, and the deployment commits, once GateRequests
// requests were served and GateDuration passed since the gate started.
// WatchdogSuspect starts the gate's counts over (not its timeout);
// WatchdogFailed rolls back at once, quarantining the version with the
// watchdog's reason. The gate's timeout rolls back too: a model that was
// not shown healthy in Timeouts.Promoted is not committed.
//
// # Parked-only, skip-trial
//
// A deployment's options are fixed by New: its Spec's, or'ed with
// Config's. With ParkedOnly the promotion, the one step this machine
// takes that changes what serves, waits (Saved.Held) until Motion says the
// vehicle is parked; unknown counts as moving, as for fleet commands, and
// a restart forgets the last Motion. The wait has its own timeout
// (Timeouts.Parked). The trial runs while driving (its answers are never
// served). Rollbacks this machine decides after a failure never wait, as
// the watchdog never delays failing away from a broken backend; an
// operator's rollback is held to the command channel's motion rules
// (sync/command.Allowed) before it gets here. With SkipTrial the
// deployment goes from staged straight to promoting: the health gate
// alone judges the model (the demo's slow model).
//
// # Operator commands and newer deployments
//
// Command abort ends a deployment before the swap (aborted, the candidate
// discarded, not quarantined); from the swap on it is refused (ErrBusy:
// roll back instead). Command rollback rolls a promoted deployment back;
// before the swap it is refused (ErrNotPromoted: abort instead), while
// promoting, committing or rolling back too (ErrBusy, with the state's
// deadline); once over, ErrDone (rolling back a committed version is the
// slot store's business).
//
// Newer offers a deployment for the same role. A deployment of the same
// bundle under way is a duplicate (ErrDuplicate); one not issued later
// than this one is refused (ErrNotNewer). Before the swap the newer one
// always replaces this one, stuck or running (replaced, cleaned up,
// StartNewer): the fleet's latest word wins and nothing that serves
// changes. From the swap until the outcome it is refused (ErrBusy): the
// promoted model is judged by its health gate first, within the state's
// timeout. Once this one is over, the newer one just starts.
//
// # Restarts
//
// Saved holds no timers and Restore takes no event but Restarted, which
// says where the slot table has the version (Slot) and whether the daemon
// had shut down cleanly. Every live state's timer starts over: time the
// daemon did not run does not count. The rules:
//
//	state            slot                  resumes as
//	downloading      any                   downloading: Download (it resumes from its own record)
//	verifying        any                   verifying: Verify
//	verified         none                  verified: Install
//	verified         candidate             staged: the install had finished
//	staged           candidate             staged: StartTrial
//	trial            candidate             staged: the trial starts over (StartTrial); its counts
//	                                       are dropped but its errors kept
//	promoting held   candidate             promoting, held again
//	promoting        candidate             failed, Discard: back, the switch had not happened and the
//	                                       previous model serves; it is not retried
//	promoting        active, committed     promoted: forward, the switch had happened; the gate starts
//	promoted         active                promoted: the gate starts over
//	committing       active                committing: Commit
//	committing       committed             committed
//	rolling_back     none                  rolled_back: the rollback had finished
//	rolling_back     other                 rolling_back: Rollback
//	any live state   anything else         failed, with the state's cleanup: the table lost it
//	an outcome       any                   unchanged; DropDownload again (but after committed or
//	                                       rolled_back), and Discard (Reject if it was quarantined)
//	                                       when the slot still has it as candidate
//
// A crash (Clean false) while the candidate is loaded — staged, trial,
// promoting not held, promoted — counts in Saved.Crashes. Past MaxCrashes
// the candidate is blamed: before the swap trial_failed (or, promoting
// before the switch, failed), quarantined; after it, rolled back.
//
// # Invariants
//
// These hold after every step; invariants_test.go checks them on every
// scenario step and on random event streams:
//
//   - every live state has a deadline after now, and an outcome has none;
//     time alone brings every deployment to an outcome;
//   - every change of state is reported, follows the table, and has a
//     reason; an outcome is reached at most once and never left;
//   - Promote only with a passed trial (or SkipTrial), never while held,
//     and with ParkedOnly only while parked; Commit only with a passed
//     health gate; Rollback only for a model that may have served, with
//     its reason, which Reject carries too;
//   - a rejected event changes nothing: the step is what a Tick would have
//     been (the timeouts due apply);
//   - Changed is exactly "Save differs", and Save survives its JSON;
//   - Saved.Validate refuses a saved state that breaks these promises, so
//     that a tampered or stale file cannot promote or commit.
//
// # Files
//
// state.go names the states; spec.go holds Spec and Tolerance; config.go
// Config, Timeouts, their defaults, validation and Set; events.go the
// events; actions.go the actions, Ready and Transition; deployment.go New,
// Restore, Step, the answers, entries, cleanup and timeouts; trial.go and
// gate.go the verdicts; commands.go operator commands and newer
// deployments; restart.go the restart rules; saved.go the persisted form;
// validate.go the checks of events; status.go the accessors. The scenario
// scripts in testdata are run by scenario_test.go, which documents their
// language.
package deploy
