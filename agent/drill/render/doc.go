// Package render draws a drill report (drill.Report) for people: three
// PNG plots made with gonum.org/v1/plot and one self-contained HTML page
// that holds them inline.
//
//   - latency.png: every answer of the drill's load as a point at the time
//     it was asked and its latency, coloured by the rung that served it
//     (primary blue, shadow orange, degraded purple, any other rung grey);
//     explicit no-results as red crosses at their latency; the deadline
//     as a dashed line; each fault's injection (dark red) and clearing
//     (dark green) as labelled vertical lines; fault phases shaded and
//     every phase named along the top. When a few latencies dwarf the
//     rest the y axis is clipped (between 1.5 and 20 deadlines, from the
//     99th percentile), the clipped answers drawn as triangles on the top
//     edge, and the title says how many and the largest.
//   - ladder.png: one row per backend, its watchdog state over time as
//     coloured bands (healthy green, suspect amber, failed red, probation
//     blue, other states grey), with the fault marks.
//   - backlog.png: the store's unsynced backlog over time as a step line,
//     the stretches with the link not connected (neither live nor
//     draining) shaded, the fault marks. It is
//     drawn for every report and says "no backlog samples" when there
//     are none.
//
// HTML writes the page: the drill, vehicle, times and software; a PASS
// or FAIL banner with the failures (and "aborted: <reason>" when the run
// stopped early); the figures per phase and in total (a duration that
// was not measured, -1 in the report, shows as "—"); the expectations;
// and the three plots as data: URIs with alt text. It has inline CSS, no
// scripts, and reads at phone width. Page writes it around plots already
// drawn; PageWith lets a server (the fleet console) link the plots it
// serves apart instead of inlining them, add a link back, and allow the
// page's inline style sheet by its hash (StyleSource) under a strict
// Content-Security-Policy.
//
// Rendering is robust to odd reports (empty series, one sample, only
// no-results, huge or non-finite latencies, negative times): it never
// panics on them, and a nil report is an error. The deadline drawn is
// Options.Deadline when set, else the report's load's (Report.Load), else
// 33 ms (the standard drills' deadline).
package render
