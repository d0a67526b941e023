// Command vigil-models writes Vigil's demo models (primary, shadow and
// degraded) and the primary's rollout versions (primary-v2, primary-bad and
// primary-slow) to a directory and prints each file's SHA-256 and size.
//
//	vigil-models [-out DIR]
//
// The models are generated deterministically (see package models/demo), so
// the printed hashes are the same on every run and machine.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vigil-av/vigil/internal/version"
	"github.com/vigil-av/vigil/models/demo"
)

const defaultOut = "build/models"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-models:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil-models", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", defaultOut, "directory to write the six models into (created if missing)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: vigil-models [-out DIR]
       vigil-models -version

Writes Vigil's three demo models and three later versions of the primary,
for over-the-air rollout demos, to DIR, each atomically (temporary file,
then rename), and prints each path with its SHA-256 and size:

  primary.onnx       PilotNet-shaped CNN, float32 weights from a fixed seed
  shadow.onnx        the primary with its weights rounded through float16
  degraded.onnx      small average-pool MLP for a loaded CPU
  primary-v2.onnx    version 2, a good update: weights within %g%% of the
                     primary's, outputs within %g of its outputs
  primary-bad.onnx   version 3, a bad update: outputs in range but far from
                     the primary's, which a trial must refuse
  primary-slow.onnx  version 4, a slow update: outputs within %g of the
                     primary's at over a hundred times its cost on a CPU
                     thread, past a 33 ms deadline

All take input %q float32 %v and give output %q float32 %v
(steering, acceleration, braking). The bytes are the same on every run.

Flags:
`, 100*demo.V2Perturbation, demo.RolloutTolerance, demo.SlowBranchScale, demo.InputName, demo.InputShape, demo.OutputName, demo.OutputShape)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err // the flag package has already printed the problem and usage
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("vigil-models", version.ONNXRuntime))
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (the output directory goes in -out)", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("-out: the output directory must not be empty")
	}

	paths, err := demo.WriteAll(*out)
	if err != nil {
		return fmt.Errorf("-out %s: %w", *out, err)
	}
	rollouts, err := demo.WriteRollouts(*out)
	if err != nil {
		return fmt.Errorf("-out %s: %w", *out, err)
	}
	paths = append(paths, rollouts...)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read back %s: %w", p, err)
		}
		sum := sha256.Sum256(data)
		if _, err := fmt.Fprintf(stdout, "%s  sha256:%s  %d bytes\n", p, hex.EncodeToString(sum[:]), len(data)); err != nil {
			return fmt.Errorf("write to stdout: %w", err)
		}
	}
	return nil
}
