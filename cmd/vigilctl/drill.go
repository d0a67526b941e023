package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/drill/render"
)

const drillUsage = "list [--json] | run <name> [--file scenario.yaml] [--no-wait] [--json] [--html out.html] | report <id> [--json] [--html out.html]"

func cmdDrill(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		fmt.Fprintf(g.stderr, "usage: vigilctl drill %s\n", drillUsage)
		return errors.New("drill: want list, run or report")
	}
	switch args[0] {
	case "list":
		return drillList(ctx, g, args[1:])
	case "run":
		return drillRun(ctx, g, args[1:])
	case "report":
		return drillReport(ctx, g, args[1:])
	case "-h", "--help", "-help", "help":
		fmt.Fprintf(g.stdout, "usage: vigilctl drill %s\n\n`vigilctl drill <list|run|report> --help` describes each one's flags.\n", drillUsage)
		return nil
	}
	fmt.Fprintf(g.stderr, "usage: vigilctl drill %s\n", drillUsage)
	return fmt.Errorf("drill %q: want list, run or report", args[0])
}

// parseInterleaved parses flags given before or after the positional
// arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func drillList(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("drill list", "[--json]", "List the standard drills and this vehicle's drill reports (newest first).")
	asJSON := fs.Bool("json", false, "print the daemon's answer as JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return fmt.Errorf("drill list: unexpected argument %q", pos[0])
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	l, err := c.Drills(cctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(g.stdout, l)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DRILL\tPHASES\tSECONDS\tDESCRIPTION")
	for _, d := range l.Drills {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\n", d.Name, d.Phases, d.Seconds, d.Description)
	}
	tw.Flush()
	fmt.Fprintln(g.stdout)
	if len(l.Reports) == 0 && l.Current == "" {
		fmt.Fprintln(g.stdout, "no drill reports on this vehicle")
		return nil
	}
	tw = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPORT\tDRILL\tRESULT\tSTARTED\tORIGIN")
	if l.Current != "" {
		fmt.Fprintf(tw, "%s\t\trunning\t\t\n", l.Current)
	}
	for _, r := range l.Reports {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, verdict(r.Passed, r.Aborted), r.Started.Local().Format(time.DateTime), r.Origin)
	}
	return tw.Flush()
}

func verdict(passed bool, aborted string) string {
	switch {
	case aborted != "":
		return "aborted"
	case passed:
		return "passed"
	}
	return "failed"
}

func drillRun(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("drill run", "<name> | --file scenario.yaml [--no-wait] [--json] [--html out.html] [--poll 250ms]",
		"Run a drill on the parked vehicle: a standard one by name (`vigilctl drill list`), or the scenario in --file. The daemon must allow drills (drills.allowed). Waits for the end and prints the report's figures; exits 1 when the drill fails or is aborted.")
	file := fs.String("file", "", "a scenario file (YAML) to run instead of a standard drill")
	noWait := fs.Bool("no-wait", false, "print the report's id and return at once")
	asJSON := fs.Bool("json", false, "print the whole report as JSON instead of the table")
	poll := fs.Duration("poll", 250*time.Millisecond, "how often to ask whether the run is over")
	html := fs.String("html", "", "also write the report as a self-contained HTML page with its plots to this file")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	var name string
	var scenario []byte
	var deadline time.Duration
	switch {
	case *file != "" && len(pos) == 0:
		if scenario, err = os.ReadFile(*file); err != nil {
			return fmt.Errorf("drill run --file: %w", err)
		}
		// Refuse a bad file here, naming it; the daemon checks it again.
		s, err := drill.Parse(scenario, *file)
		if err != nil {
			return err
		}
		deadline = s.Load.Deadline
	case *file == "" && len(pos) == 1:
		name = pos[0]
	default:
		fs.Usage()
		return errors.New("drill run: want a standard drill's name or --file scenario.yaml (one of them)")
	}
	if *poll <= 0 {
		return fmt.Errorf("--poll %v: must be positive", *poll)
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	id, err := c.DrillRun(cctx, name, scenario)
	cancel()
	if err != nil {
		return err
	}
	if *noWait {
		fmt.Fprintln(g.stdout, id)
		return nil
	}
	fmt.Fprintf(g.stderr, "drill %s started; waiting for its end (Ctrl-C stops waiting, not the drill)\n", id)
	rep, raw, err := waitDrill(ctx, g, c, id, *poll)
	if err != nil {
		return err
	}
	return showReport(g, rep, raw, *asJSON, *html, deadline)
}

// waitDrill polls the report until the run is over.
func waitDrill(ctx context.Context, g *globals, c *client.Client, id string, poll time.Duration) (*drill.Report, []byte, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, g.timeout)
		st, err := c.DrillReport(cctx, id)
		cancel()
		if err != nil {
			return nil, nil, err
		}
		if !st.Running {
			return decodeReport(st.Report)
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("stopped waiting for drill %s (it goes on; `vigilctl drill report %s` shows it once over): %w", id, id, ctx.Err())
		case <-t.C:
		}
	}
}

func decodeReport(raw []byte) (*drill.Report, []byte, error) {
	var rep drill.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, nil, fmt.Errorf("the daemon's report does not decode: %w", err)
	}
	return &rep, raw, nil
}

func drillReport(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("drill report", "<id> [--json] [--html out.html]", "Print a drill report kept on this vehicle (`vigilctl drill list` lists them); exits 1 when the drill failed or was aborted.")
	asJSON := fs.Bool("json", false, "print the whole report as JSON")
	html := fs.String("html", "", "also write the report as a self-contained HTML page with its plots to this file")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("drill report: want exactly one argument, the report's id")
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	st, err := c.DrillReport(cctx, pos[0])
	if err != nil {
		return err
	}
	if st.Running {
		fmt.Fprintf(g.stdout, "drill %s (%s) is running: phase %s\n", st.ID, st.Name, st.Phase)
		return nil
	}
	rep, raw, err := decodeReport(st.Report)
	if err != nil {
		return err
	}
	return showReport(g, rep, raw, *asJSON, *html, 0)
}

// showReport prints the report and returns an error (exit status 1) when
// the drill did not pass.
func showReport(g *globals, rep *drill.Report, raw []byte, asJSON bool, html string, deadline time.Duration) error {
	if html != "" {
		if err := writeHTML(html, rep, deadline); err != nil {
			return err
		}
		fmt.Fprintf(g.stderr, "report %s written to %s\n", rep.ID, html)
	}
	if asJSON {
		g.stdout.Write(raw)
		fmt.Fprintln(g.stdout)
	} else {
		printReport(g.stdout, rep)
	}
	if !rep.Passed {
		return fmt.Errorf("drill %s %s", rep.ID, verdict(rep.Passed, rep.Aborted))
	}
	return nil
}

func printReport(w io.Writer, r *drill.Report) {
	fmt.Fprintf(w, "drill %s on %s: %s\n", r.Name, r.Vehicle, strings.ToUpper(verdict(r.Passed, r.Aborted)))
	fmt.Fprintf(w, "report %s, started %s, %.1f s, by %s\n", r.ID, r.Started.Local().Format(time.DateTime), r.Ended.Sub(r.Started).Seconds(), r.Origin)
	if r.Aborted != "" {
		fmt.Fprintf(w, "aborted: %s\n", r.Aborted)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  failed: %s\n", f)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PHASE\tFAULT\tREQUESTS\tOK\tMISSED\tNO_RESULT\tDETECT ms\tFAILOVER ms\tBACK ms\tAVAIL\tLAG ms\tUNSYNCED\tAGE ms\tLOST\tRESULT\t")
	for _, p := range r.Phases {
		figureRow(tw, p.Name, p.Fault, p.Figures, verdict(p.Passed, ""))
	}
	figureRow(tw, "total", "", r.Totals, verdict(r.Passed, r.Aborted))
	tw.Flush()
}

func figureRow(w io.Writer, name, fault string, f drill.Figures, result string) {
	if fault == "" {
		fault = "-"
	}
	fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%.4f\t%.1f\t%d\t%.0f\t%d\t%s\t\n",
		name, fault, f.Requests, f.OK, f.Missed, noResults(f.NoResult), ms(f.DetectionMS), ms(f.FailoverMS), ms(f.BackToPrimaryMS),
		f.Availability, f.DurableLagMS, f.UnsyncedMax, f.UnsyncedAgeMS, f.Lost, result)
}

// ms prints a measured duration; -1 (not measured) as "-".
func ms(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func noResults(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// writeHTML renders the report's page (agent/drill/render) into path.
// The latency plot's deadline line is the scenario's: deadline when the
// scenario file is at hand, else the report's own load's, else the
// standard drill's of the report's name (reports from before they carried
// their load), else render's default.
func writeHTML(path string, rep *drill.Report, deadline time.Duration) error {
	if deadline == 0 {
		deadline = rep.Load.Deadline
	}
	if s, ok := drill.Lookup(rep.Name); ok && deadline == 0 {
		deadline = s.Load.Deadline
	}
	var buf bytes.Buffer
	if err := render.HTML(&buf, rep, render.Options{Deadline: deadline}); err != nil {
		return fmt.Errorf("--html: render report %s: %w", rep.ID, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
