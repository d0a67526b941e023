// Package drillstore keeps the fleet side's drill results in a
// directory: every report a vehicle published (drill.Report, as the
// vehicle wrote it) and every fleet run of a drill (Run: who was asked,
// what each answered, the figures and the fleet's percentiles), so that
// a drill can be compared with the last one of the same name, and so
// that the console shows the history.
//
// The layout, under the store's directory:
//
//	reports/<vehicle>/<report id>.json   one drill.Report each
//	runs/<run id>.json                   one Run each
//
// Vehicle names and ids are names as batch.ValidName allows (1 to 64 of
// letters, digits, '_', '-', '.', not starting with '.'), so none can
// reach outside its directory. A file is written whole: under a
// temporary dot name beside it, fsynced, renamed over it, and the
// directory fsynced; a reader (or a crash) sees the old file or the new,
// never a mix, and listings skip the temporary names.
//
// The package is pure Go over the file system: it links neither the
// vehicle's store nor ONNX Runtime, so vigil-fleet (drill run, list,
// show) and its console use it directly.
package drillstore
