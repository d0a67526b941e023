package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/sync/sink"
)

func setupReport(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	dir := fs.String("sink", "", "the sink directory (as ingest --sink wrote it); required")
	asJSON := fs.Bool("json", false, "print sink.Report as JSON")
	return func(_ context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("report: unexpected arguments %q", args)
		}
		s, err := openSink("report", *dir)
		if err != nil {
			return err
		}
		return printReport(g.stdout, s.Report(), *asJSON)
	}
}

// openSink opens an existing sink directory for the subcommand cmd.
func openSink(cmd, dir string) (*sink.Sink, error) {
	if dir == "" {
		return nil, fmt.Errorf("%s: --sink is required", cmd)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: --sink: %w", cmd, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: --sink %s: not a directory", cmd, dir)
	}
	s, err := sink.Open(dir, sink.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: --sink %s: %w", cmd, dir, err)
	}
	return s, nil
}

func printReport(w io.Writer, r sink.Report, asJSON bool) error {
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(r)
	}
	if len(r.Vehicles) == 0 {
		fmt.Fprintln(w, "the sink holds no records")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VEHICLE\tSTORE\tSTREAM\tFROM\tHIGH-WATER\tTHROUGH\tRECORDS\tFILES\tGAP RECORDS\tEVICTED\tMISSING")
		for _, v := range r.Vehicles {
			for _, s := range v.Streams {
				fmt.Fprintf(tw, "%s\t%016x\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", v.Vehicle, s.Store, s.Stream, s.From, s.HighWater, s.Through,
					s.Records, s.Files, len(s.Gaps), ranges(s.Evicted), ranges(s.Missing))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	missing := 0
	for _, v := range r.Vehicles {
		for _, s := range v.Streams {
			for _, m := range s.Missing {
				missing += int(m.Len())
			}
		}
	}
	if missing > 0 {
		fmt.Fprintf(w, "%d records missing without explanation (a later gap record may still explain them)\n", missing)
	}
	printIncarnations(w, r)
	for _, c := range r.Corrupt {
		fmt.Fprintf(w, "corrupt file moved aside: %s\n", c)
	}
	return nil
}

// printIncarnations prints, for each vehicle with a restored store, its
// stores in lineage order: what each superseded one lost after the
// checkpoint its successor was restored from, and where each restored
// one's streams start.
func printIncarnations(w io.Writer, r sink.Report) {
	var lost uint64
	lowerBound := false
	for _, v := range r.Vehicles {
		if !slices.ContainsFunc(v.Stores, func(s sink.StoreReport) bool { return s.Lineage != nil || len(s.Successors) > 0 }) {
			continue
		}
		fmt.Fprintf(w, "\n%s: store incarnations, in lineage order\n", v.Vehicle)
		for _, st := range v.Stores {
			fmt.Fprintf(w, "  %016x", st.Store)
			if !st.Known {
				fmt.Fprint(w, " (no record or heartbeat of it in the sink)")
			}
			if l := st.Lineage; l != nil {
				fmt.Fprintf(w, " restored from %016x at checkpoint %s (first batch %s); starts at %s",
					l.Parent, l.Checkpoint, stamp(l.Recorded), starts(l.ParentLast))
			}
			fmt.Fprintln(w)
			if hb := st.Heartbeat; hb != nil {
				fmt.Fprintf(w, "    last heartbeat: boot %d seq %d, vehicle clock %s, received %s\n", hb.Boot, hb.Seq, stamp(hb.Wall), stamp(hb.Received))
			}
			for _, sc := range st.Successors {
				fmt.Fprintf(w, "    superseded by %016x at checkpoint %s: %d records lost\n", sc.Store, sc.Checkpoint, sc.Lost)
				for _, ls := range sc.Streams {
					fmt.Fprintf(w, "      %s\n", lostLine(ls))
					lost += ls.Count
					lowerBound = lowerBound || ls.HeadAtLeast || !ls.ParentLastKnown
				}
			}
		}
	}
	if lost > 0 {
		if lowerBound {
			fmt.Fprintf(w, "%d records lost in failures, at least (see the incarnations above)\n", lost)
		} else {
			fmt.Fprintf(w, "%d records lost in failures (see the incarnations above)\n", lost)
		}
	}
}

// lostLine says what a superseded store lost of one stream.
func lostLine(ls sink.LostStream) string {
	if !ls.ParentLastKnown {
		return fmt.Sprintf("%s: stored %s; not known yet (the restored store has sent no batch of the stream, which brings the checkpoint's last)", ls.Stream, ranges(ls.Stored))
	}
	head := fmt.Sprintf("head %d", ls.Head)
	if n := len(ls.Stored); n == 0 || ls.Stored[n-1].Last < ls.Head {
		head += " (its last heartbeat)"
	}
	if ls.HeadAtLeast {
		head = fmt.Sprintf("head at least %d (the last heartbeat is older than the last stored record, or there is none)", ls.Head)
	}
	line := fmt.Sprintf("%s: checkpoint held to %d; stored %s; %s", ls.Stream, ls.ParentLast, ranges(ls.Stored), head)
	if ls.Count == 0 {
		if ls.HeadAtLeast {
			return line + "; none lost that the sink knows of"
		}
		return line + "; none lost"
	}
	line += fmt.Sprintf("; lost %s (%d records", ranges(ls.Lost), ls.Count)
	if ls.HeadAtLeast {
		line += ", or more"
	}
	line += ")"
	if !ls.After.IsZero() {
		line += ", written after " + stamp(ls.After)
	}
	if !ls.Before.IsZero() {
		line += ", before " + stamp(ls.Before)
	}
	if ls.ReadError != "" {
		line += " (reading their bounds: " + ls.ReadError + ")"
	}
	return line
}

// starts lists where each of a restored store's streams starts.
func starts(parentLast map[string]uint64) string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(parentLast)) {
		out = append(out, fmt.Sprintf("%s %d", name, parentLast[name]+1))
	}
	return strings.Join(out, ", ")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func ranges(rs []sink.Range) string {
	if len(rs) == 0 {
		return "-"
	}
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, ",")
}
