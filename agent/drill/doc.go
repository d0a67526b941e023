// Package drill holds Vigil's drills as data: a scenario (a fault
// schedule, a load and expectations, read from a small YAML file; the
// standard ones ship embedded) and a report (what a run measured per
// phase, the verdict, and the series its pictures are drawn from).
//
// It is pure: it links neither the store nor ONNX Runtime, so the fleet
// side (vigil-fleet) reads reports with it too. The daemon runs
// scenarios (agent's drill runner); subpackage render draws reports.
package drill
