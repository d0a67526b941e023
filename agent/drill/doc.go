// Package drill holds Vigil's drills as data: a scenario (a fault
// schedule, a load and expectations, read from a small YAML file by Parse;
// the standard ones ship embedded, see Standard and Lookup) and a report
// (what a run measured per phase, the verdict, and the series its
// pictures are drawn from).
//
// A Recorder measures a run: the daemon's drill runner feeds it phases,
// the load's answers, the watchdog's transitions and the store's backlog,
// each with its own time, and Finish computes the Report. docs/drills.md
// defines every figure.
//
// It is pure: it links neither the store nor ONNX Runtime, so the fleet
// side (vigil-fleet) reads reports with it too. The daemon runs
// scenarios (agent's drill runner); subpackage render draws reports.
package drill
