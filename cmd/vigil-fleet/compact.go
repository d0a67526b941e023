package main

import (
	"context"
	"flag"
	"fmt"
)

func setupCompact(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	dir := fs.String("sink", "", "the sink directory (as ingest --sink wrote it); required")
	return func(_ context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("compact: unexpected arguments %q", args)
		}
		s, err := openSink("compact", *dir)
		if err != nil {
			return err
		}
		st, err := s.Compact()
		fmt.Fprintf(g.stdout, "%d one-batch files of %d streams merged into %d segments\n", st.Files, st.Streams, st.Segments)
		if st.Corrupt > 0 {
			fmt.Fprintf(g.stdout, "%d files did not decode and were renamed <name>.corrupt (the report lists them)\n", st.Corrupt)
		}
		if err != nil {
			return fmt.Errorf("compact: --sink %s: %w (run it again: what was done is kept, and nothing is lost)", *dir, err)
		}
		return nil
	}
}
