// Package console is the fleet console that `vigil-fleet serve` serves:
// server-rendered HTML pages (html/template, embedded) and the same data
// as JSON, read-only, built from what the fleet side already receives.
//
// How the parts fit:
//
//   - sources.go names the data sources as small interfaces, each owned
//     here: PresenceSource (the vehicles' retained status and heartbeats,
//     live from the broker: live.go's Live), TelemetrySource (the
//     ingester's sink directory: SinkDir), CheckpointSource (the
//     checkpoint catalog: CatalogDir), RolloutSource (the rollouts
//     directory: RolloutDir) and DrillSource (the drill store: drills.go's
//     DrillDir, which also serves each report's page and plots under
//     /drills/, drawn by agent/drill/render; NoDrills when none is
//     configured). A source that is not configured is nil, and the pages
//     say so rather than show anything invented.
//   - collect.go builds the view (view.go: Fleet, Vehicle, Event) from
//     the sources at one instant; it reads no clock of its own.
//   - server.go serves the pages and the JSON (/, /vehicles/<id>,
//     /api/vehicles, /api/vehicles/<id>, /static/console.css, the fleet's
//     drill runs at /drills/ and /api/drills (drillruns.go), and a drill
//     source's /drills/<vehicle>/<id>/…), and
//     access.go decides who may ask: loopback only, unless TLS with
//     client certificates or a bearer token from a file is configured.
//
// Nothing here writes to a vehicle or to the fleet's stores: the pages
// may show the vigil-fleet command an operator would sign and run, never
// run it. docs/console.md describes the pages and every column.
package console
