// Package deploywire holds what a vehicle and the fleet exchange about one
// model deployment, and nothing else: the deploy report a vehicle
// publishes, retained, on vigil/v1/<vehicle>/deploy (Report, State,
// ReportTopic), and the arguments of the two fleet commands that start and
// undo a deployment, model-deploy and model-rollback (DeployArgs,
// RollbackArgs). It imports only the standard library and two small
// packages of sync (command, the command channel's pure core, and batch,
// for the rule of a vehicle id), so that the daemon, vigil-fleet and
// small tools can all link it.
//
// # The report
//
// A vehicle publishes its current deployment's state each time it changes,
// at QoS 1 and retained, so that a fleet process that subscribes later
// (a rollout resumed after a crash) learns every vehicle's latest state at
// once:
//
//	{"v":1,"vehicle":"veh-1","bundle_hash":"<64 hex digits>","role":"primary",
//	 "state":"trial","deployment":"r1:veh-1:deploy-1","updated_ms":1764100000000}
//
// Deployment is the correlation id of the model-deploy command that
// started the deployment (empty when the vehicle started it itself): the
// fleet matches reports to its own commands by it. Reason says why a
// deployment failed, was refused, rolled back or timed out. The states
// are the lifecycle's (models/deploy), by the same names; in progress,
// in their order:
//
//	downloading → verifying → verified → staged → trial → promoting →
//	promoted → committing → committed          (rolling_back on the way back)
//
// and the outcomes: committed, the one success, and the failures
// (Failed): rolled_back, trial_failed, refused, failed, timed_out, and
// aborted and replaced (ended on the vehicle before the model served).
//
// # The commands
//
// model-deploy (command.ModelDeploy) asks a vehicle to deploy one bundle
// to one role; DeployArgs is its argument map, and ParseDeployArgs is the
// check a vehicle's executor runs before it acts (an error there is the
// response's bad_args). model-rollback (command.ModelRollback) asks it to
// stop that deployment, or to roll the role back to its previous slot if
// the bundle was promoted or committed.
package deploywire
