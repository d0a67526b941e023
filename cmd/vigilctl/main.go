// Command vigilctl is the local command line for a running vigild: status,
// test requests, operator commands and drills, over the daemon's socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/cmd/internal/cli"
	"github.com/vigil-av/vigil/internal/version"
)

const defaultSocket = "/run/vigil/vigild.sock"

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, g *globals, args []string) error
}

var commands = []command{
	{"status", "[--json]", "backends with state and reason, active rung, policy, counters, latency, failover times", cmdStatus},
	{"watch", "[--interval 1s]", "status, refreshed until interrupted", cmdWatch},
	{"infer", "[--file F] [--budget 33ms]", "send one request (random frame, or float32 little-endian from a file); print who served and the outputs", cmdInfer},
	{"failover", "<primary|shadow|degraded>", "force a backend out of service until cleared", cmdFailover},
	{"clear", "<primary|shadow|degraded>", "clear a failed backend: it comes back through probation", cmdClear},
	{"policy", "<hot|warm|cold>", "set the redundancy policy", cmdPolicy},
	{"vehicle", "<parked|driving>", "report the vehicle's state, as a supervisor does", cmdVehicle},
	{"inject", "<backend> <fault> [flags]", "drill: inject a fault (hang, stuck, latency, error, nan, wrong, crash, wedge, leak, none); refused unless the daemon allows drills and the vehicle is parked", cmdInject},
	{"log-level", "<debug|info|warn|error>", "change the daemon's log level", cmdLogLevel},
	{"checkpoint", "now [--kind K]", "take a checkpoint of the store now (full, incremental or differential) and print its summary", cmdCheckpoint},
	{"drill", "list|run <name>|report <id>", "drills: list the standard ones and this vehicle's reports, run one on the parked vehicle and print its figures, show a report", cmdDrill},
}

type globals struct {
	socket  string
	timeout time.Duration
	stdout  io.Writer
	stderr  io.Writer
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: vigilctl [--socket PATH] <command> [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %-28s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "global flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "`vigilctl <command> --help` describes a command's flags.")
}

func main() { cli.Main("vigilctl", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("vigilctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := defaultSocket
	if s := os.Getenv("VIGIL_SOCKET"); s != "" {
		sock = s
	}
	fs.StringVar(&g.socket, "socket", sock, "vigild's socket (or $VIGIL_SOCKET)")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Second, "how long to wait for the daemon")
	showVersion := fs.Bool("version", false, "print vigilctl's version and exit (the daemon's is in `vigilctl status`)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
		}
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("vigilctl", version.ONNXRuntime))
		return nil
	}
	if fs.NArg() == 0 {
		usage(stderr, fs)
		return errors.New("no command given")
	}
	name := fs.Arg(0)
	if name == "help" {
		usage(stdout, fs)
		return nil
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, g, fs.Args()[1:])
		}
	}
	usage(stderr, fs)
	return fmt.Errorf("unknown command %q", name)
}

// dial connects to the daemon; the client's errors say whether it is not
// running or the socket is not permitted.
func (g *globals) dial(ctx context.Context) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	return client.DialOptions(ctx, g.socket, client.Options{DialTimeout: g.timeout})
}

// subFlags makes a command's flag set, printing its usage on --help.
func (g *globals) subFlags(name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("vigilctl "+name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	fs.Usage = func() {
		fmt.Fprintf(g.stderr, "usage: vigilctl %s %s\n\n%s\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs
}

func parseBackend(s string) (client.Backend, error) {
	switch s {
	case "primary":
		return client.Primary, nil
	case "shadow":
		return client.Shadow, nil
	case "degraded":
		return client.Degraded, nil
	}
	return 0, fmt.Errorf("backend %q: want primary, shadow or degraded", s)
}

func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return "", fmt.Errorf("%s: want exactly one argument, %s", fs.Name(), what)
	}
	return fs.Arg(0), nil
}
