package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/sync/drillstore"
)

// The drill subcommands (run, list, show) keep every fleet run of a
// drill, and every report the vehicles published, in the drill store
// (sync/drillstore): run writes it, list and show read it, and the
// console shows it.

// drillsDirName is the drill store's name beside a sink directory, as
// rolloutsDirName is the rollouts directory's.
const drillsDirName = "drills"

// drillDirFlags are the flags that name the drill store.
type drillDirFlags struct{ dir, sink *string }

func addDrillDirFlags(fs *flag.FlagSet) drillDirFlags {
	return drillDirFlags{
		dir:  fs.String("drills", "", "the drill store: runs/ and reports/<vehicle>/ under it, one JSON file each; default: the directory "+drillsDirName+" beside --sink"),
		sink: fs.String("sink", "", "the sink directory of vigil-fleet ingest: only to find the default --drills"),
	}
}

// open opens (making it if needed) the drill store for the subcommand
// cmd: --drills, else the sibling of --sink.
func (f drillDirFlags) open(cmd string) (*drillstore.Store, error) {
	var root, name string
	switch {
	case *f.dir != "":
		root, name = *f.dir, "--drills"
	case *f.sink != "":
		root, name = filepath.Join(filepath.Dir(filepath.Clean(*f.sink)), drillsDirName), "--drills (default from --sink)"
	default:
		return nil, fmt.Errorf("%s: --drills is required (or --sink, whose sibling directory %s is the default)", cmd, drillsDirName)
	}
	s, err := drillstore.Open(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", cmd, name, err)
	}
	return s, nil
}

func setupDrillList(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	df := addDrillDirFlags(fs)
	asJSON := fs.Bool("json", false, "print the runs as one JSON document")
	return func(_ context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("drill list: unexpected arguments %q", args)
		}
		s, err := df.open("drill list")
		if err != nil {
			return err
		}
		runs, err := s.Runs()
		if err != nil {
			return fmt.Errorf("drill list: %w", err)
		}
		if *asJSON {
			return writeJSON(g.stdout, map[string]any{"drills": s.Dir(), "runs": runs})
		}
		if len(runs) == 0 {
			fmt.Fprintf(g.stdout, "no drill runs in %s\n", s.Dir())
			return nil
		}
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tDRILL\tSTARTED\tASKED\tPASSED\tFAILED\tSKIPPED\tOTHER\tFAILOVER P95\tDETECTION P95\tVERDICT")
		for _, r := range runs {
			c := r.Fleet.Counts
			other := len(r.Vehicles) - c[drillstore.Passed] - c[drillstore.Failed] - c[drillstore.Skipped]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.ID, r.Name, r.Started.UTC().Format(time.RFC3339),
				len(r.Asked), c[drillstore.Passed], c[drillstore.Failed], c[drillstore.Skipped], other,
				ms(r.Fleet.FailoverMS.P95), ms(r.Fleet.DetectionMS.P95), runVerdict(&r))
		}
		return tw.Flush()
	}
}

func setupDrillShow(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	df := addDrillDirFlags(fs)
	asJSON := fs.Bool("json", false, "print the run, the last run of the same drill before it and the comparison as one JSON document")
	return func(_ context.Context, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("drill show: want one run id (drill list lists them), got %d arguments", len(args))
		}
		s, err := df.open("drill show")
		if err != nil {
			return err
		}
		r, err := s.Run(args[0])
		if err != nil {
			return fmt.Errorf("drill show: %w", err)
		}
		prev, _, err := s.LastRun(r.Name, r.Started)
		if err != nil {
			return fmt.Errorf("drill show: the run before: %w", err)
		}
		if *asJSON {
			return writeJSON(g.stdout, runDoc(s, r, prev))
		}
		printRun(g.stdout, s, r, prev)
		return nil
	}
}

func runVerdict(r *drillstore.Run) string {
	switch {
	case r.Ended.IsZero():
		return "running"
	case r.OK():
		return "ok"
	}
	return "FAIL"
}

// runJSON is the JSON form of a run as drill run and drill show print it.
type runJSON struct {
	Run      *drillstore.Run     `json:"run"`
	OK       bool                `json:"ok"`
	Previous *drillstore.Run     `json:"previous"`
	Changes  []drillstore.Change `json:"changes"`
	Reports  map[string]string   `json:"reports"` // vehicle → the report's file
}

func runDoc(s *drillstore.Store, r, prev *drillstore.Run) runJSON {
	doc := runJSON{Run: r, OK: r.OK(), Previous: prev, Changes: []drillstore.Change{}, Reports: map[string]string{}}
	if prev != nil {
		doc.Changes = drillstore.Compare(prev, r)
	}
	for _, v := range r.Vehicles {
		if v.ReportID != "" && v.Figures != nil {
			doc.Reports[v.Vehicle] = s.ReportPath(v.Vehicle, v.ReportID)
		}
	}
	return doc
}

func writeJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

// printRun writes the fleet table: a line per vehicle, the fleet's
// counts and percentiles, and the comparison with prev when there is
// one.
func printRun(w io.Writer, s *drillstore.Store, r, prev *drillstore.Run) {
	mode := ""
	if r.OnlyParked {
		mode = ", only parked"
	}
	fmt.Fprintf(w, "drill %s — run %s, started %s, %s asked%s: %s\n\n", r.Name, r.ID, r.Started.UTC().Format(time.RFC3339),
		plural(len(r.Asked), "vehicle", "vehicles"), mode, runVerdict(r))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VEHICLE\tRESULT\tREQUESTS\tMISSED\tDETECTION\tFAILOVER\tBACK TO PRIMARY\tDRAIN\tAVAILABILITY\tUNSYNCED MAX\tRPO\tREPORT OR WHY")
	for _, v := range r.Vehicles {
		why := v.ReportID
		if v.Outcome == drillstore.Failed {
			why = strings.Join(append(nonEmpty(v.Aborted), v.Failures...), "; ") + " (" + v.ReportID + ")"
		} else if v.Moving {
			why = "the vehicle moves (" + v.Code + ")"
		} else if v.Figures == nil {
			why = v.Message
			if v.Code != "" && v.Code != "ok" && !strings.HasPrefix(why, v.Code) {
				why = v.Code + ": " + why
			}
		}
		f := v.Figures
		if f == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n", v.Vehicle, v.Outcome, oneLine(why))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%.2f%%\t%d\t%s\t%s\n", v.Vehicle, v.Outcome, f.Requests, f.Missed,
			ms(f.DetectionMS), ms(f.FailoverMS), ms(f.BackToPrimaryMS), ms(f.DrainMS), 100*f.Availability, f.UnsyncedMax, ms(f.UnsyncedAgeMS), oneLine(why))
	}
	tw.Flush()

	fl := r.Fleet
	var counts []string
	for _, o := range []drillstore.Outcome{drillstore.Passed, drillstore.Failed, drillstore.Skipped, drillstore.Refused,
		drillstore.NoResponse, drillstore.NoReport, drillstore.Pending} {
		if n := fl.Counts[o]; n > 0 || o == drillstore.Passed || o == drillstore.Failed {
			counts = append(counts, fmt.Sprintf("%d %s", n, o))
		}
	}
	fmt.Fprintf(w, "\nfleet: %s\n", strings.Join(counts, ", "))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FIGURE\tVEHICLES\tP50\tP95\tMAX")
	for _, p := range []struct {
		name string
		p    drillstore.Percentiles
	}{{"detection", fl.DetectionMS}, {"failover", fl.FailoverMS}, {"back to primary", fl.BackToPrimaryMS}, {"drain", fl.DrainMS}} {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", p.name, p.p.N, ms(p.p.P50), ms(p.p.P95), ms(p.p.Max))
	}
	tw.Flush()
	if fl.Reports > 0 {
		fmt.Fprintf(w, "  requests %d, missed %d, lowest availability %.2f%%, unsynced at most %d, RPO at most %s, lost %d\n",
			fl.Requests, fl.Missed, 100*fl.MinAvailability, fl.MaxUnsynced, ms(fl.MaxUnsyncedAgeMS), fl.Lost)
	}
	printComparison(w, r, prev)
	var files []string
	for _, v := range r.Vehicles {
		if v.ReportID != "" && v.Figures != nil {
			files = append(files, "  "+s.ReportPath(v.Vehicle, v.ReportID))
		}
	}
	if len(files) > 0 {
		fmt.Fprintf(w, "\nreports:\n%s\n", strings.Join(files, "\n"))
	}
}

func printComparison(w io.Writer, r, prev *drillstore.Run) {
	if prev == nil {
		fmt.Fprintf(w, "\nno earlier run of %s to compare with\n", r.Name)
		return
	}
	fmt.Fprintf(w, "\ncompared with the last run of %s, %s (started %s):\n", r.Name, prev.ID, prev.Started.UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range drillstore.Compare(prev, r) {
		mark := ""
		switch {
		case c.Worse:
			mark = "worse"
		case c.Before == c.Now:
			mark = "same"
		case c.Before >= 0 && c.Now >= 0:
			mark = "better"
		}
		fmt.Fprintf(tw, "  %s\t%s → %s\t%s\n", c.Figure, figure(c.Figure, c.Before), figure(c.Figure, c.Now), mark)
	}
	tw.Flush()
}

// figure writes a compared figure: milliseconds, a fraction, or a count.
func figure(name string, v float64) string {
	switch {
	case strings.HasSuffix(name, " ms"):
		if v < 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", v)
	case strings.Contains(name, "availability"):
		if v < 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f%%", 100*v)
	}
	return fmt.Sprintf("%.0f", v)
}

// ms writes a duration in milliseconds; -1 (not measured) is "-".
func ms(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", v)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{"aborted: " + s}
}

var errDrillFailed = errors.New("drill failed")
