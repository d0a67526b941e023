package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

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
		fmt.Fprintln(tw, "VEHICLE\tSTORE\tSTREAM\tHIGH-WATER\tTHROUGH\tRECORDS\tFILES\tGAP RECORDS\tEVICTED\tMISSING")
		for _, v := range r.Vehicles {
			for _, s := range v.Streams {
				fmt.Fprintf(tw, "%s\t%016x\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", v.Vehicle, s.Store, s.Stream, s.HighWater, s.Through,
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
	for _, c := range r.Corrupt {
		fmt.Fprintf(w, "corrupt file moved aside: %s\n", c)
	}
	return nil
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
