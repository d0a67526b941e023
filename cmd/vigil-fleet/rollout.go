package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-av/vigil/sync/cmdlink"
	"github.com/vigil-av/vigil/sync/rollout"
	"github.com/vigil-av/vigil/sync/rollout/runner"
	"github.com/vigil-av/vigil/sync/rollout/store"
)

// The rollout subcommands (start, status, pause, resume, abort) keep
// each rollout in a file of the rollouts directory (sync/rollout/store):
// start runs one, the others read or change it from another process,
// and the running start sees the change at its next step.

// rolloutsDirName is the rollouts directory's name beside a sink
// directory, as checkpointDirName is the checkpoint store's.
const rolloutsDirName = "rollouts"

// rolloutDirFlags are the flags that name the rollouts directory.
type rolloutDirFlags struct{ dir, sink *string }

func addRolloutDirFlags(fs *flag.FlagSet) rolloutDirFlags {
	return rolloutDirFlags{
		dir:  fs.String("rollouts-dir", "", "the directory of rollouts, one JSON file each; default: the directory "+rolloutsDirName+" beside --sink"),
		sink: fs.String("sink", "", "the sink directory of `vigil-fleet ingest`: only to find the default --rollouts-dir"),
	}
}

// root resolves the directory: --rollouts-dir, else the sibling of --sink.
func (f rolloutDirFlags) root() (string, string, error) {
	switch {
	case *f.dir != "":
		return *f.dir, "--rollouts-dir", nil
	case *f.sink != "":
		return filepath.Join(filepath.Dir(filepath.Clean(*f.sink)), rolloutsDirName), "--rollouts-dir (default from --sink)", nil
	}
	return "", "", errors.New("--rollouts-dir is required (or --sink, whose sibling directory " + rolloutsDirName + " is the default)")
}

// open opens the directory, which must exist, for the subcommand cmd.
func (f rolloutDirFlags) open(cmd string) (*store.Dir, error) {
	root, name, err := f.root()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	d, err := store.Open(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", cmd, name, err)
	}
	return d, nil
}

// create opens the directory, making it if needed.
func (f rolloutDirFlags) create(cmd string) (*store.Dir, error) {
	root, name, err := f.root()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	d, err := store.Create(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", cmd, name, err)
	}
	return d, nil
}

// rolloutID takes the one positional argument, a rollout id.
func rolloutID(cmd string, args []string) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("%s: want one rollout id (rollout status lists them), got %d arguments", cmd, len(args))
	}
	return args[0], nil
}

// runFlags are the flags of the subcommands that run a rollout's steps
// over the broker: start, and abort --rollback.
type runFlags struct {
	b                 *brokerFlags
	key               *string
	timeout, ack, ttl *time.Duration
	tick              *time.Duration
	parallel          *int
}

func addRunFlags(fs *flag.FlagSet) runFlags {
	return runFlags{
		b:        addBrokerFlags(fs),
		key:      fs.String("key", os.Getenv("VIGIL_FLEET_KEY"), "the operator's private command-signing key file, as keygen writes it (default $VIGIL_FLEET_KEY)"),
		timeout:  fs.Duration("timeout", 10*time.Second, "how long to wait for the broker"),
		ack:      fs.Duration("ack-timeout", 30*time.Second, "how long to wait for a vehicle's response to each command (it is sent again after --resend-after)"),
		ttl:      fs.Duration("ttl", cmdlink.DefaultTTL, "how long each signed command stays valid"),
		tick:     fs.Duration("tick", time.Second, "how often the rollout is looked at without news: for timeouts, and a pause or abort from another vigil-fleet"),
		parallel: fs.Int("parallel", 16, "commands in flight at most"),
	}
}

// check validates the flags and reads the key, before anything changes.
func (f runFlags) check(cmd string) (ed25519.PrivateKey, error) {
	if *f.key == "" {
		return nil, fmt.Errorf("%s: --key is required: the private command-signing key file keygen wrote (or $VIGIL_FLEET_KEY)", cmd)
	}
	if *f.timeout <= 0 || *f.ack <= 0 || *f.ttl <= 0 || *f.tick <= 0 || *f.parallel <= 0 {
		return nil, fmt.Errorf("%s: --timeout, --ack-timeout, --ttl, --tick and --parallel must be positive", cmd)
	}
	if _, err := f.b.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	priv, err := cmdlink.ReadPrivateKey(*f.key)
	if err != nil {
		return nil, fmt.Errorf("%s: --key: %w", cmd, err)
	}
	return priv, nil
}

// link is the connections a runner needs: the deploy reports and the
// command sender.
type link struct {
	reports *runner.ReportWatcher
	sender  *cmdlink.Sender
}

func (f runFlags) dial(ctx context.Context, cmd string) (*link, error) {
	tlsCfg, err := f.b.check()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	dctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	reportsID, senderID := "", ""
	if f.b.clientID != "" {
		reportsID, senderID = f.b.clientID+"-reports", f.b.clientID
	}
	w, err := runner.WatchReports(dctx, runner.WatchConfig{Broker: f.b.url, ClientID: reportsID, TLS: tlsCfg, ConnectTimeout: *f.timeout})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	s, err := cmdlink.Dial(dctx, cmdlink.SenderConfig{Broker: f.b.url, ClientID: senderID, TLS: tlsCfg, ConnectTimeout: *f.timeout})
	if err != nil {
		w.Close(ctx)
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return &link{reports: w, sender: s}, nil
}

func (l *link) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(l.sender.Close(ctx), l.reports.Close(ctx))
}

// run runs rollout id's steps until it is finished or ctx ends, printing
// each decision on w as it is taken.
func (f runFlags) run(ctx context.Context, l *link, dir *store.Dir, id string, priv ed25519.PrivateKey, w io.Writer) (*rollout.Rollout, error) {
	return runner.Run(ctx, runner.Config{
		Dir: dir, ID: id, Reports: l.reports, Tick: *f.tick, Parallel: *f.parallel,
		Commander: runner.SenderCommander{Sender: l.sender, Key: priv, TTL: *f.ttl, AckTimeout: *f.ack},
		OnEntry:   func(e rollout.Entry) { printEntry(w, e) },
	})
}

// printEntry writes one decision on a line: when, wave, vehicle, what,
// why.
func printEntry(w io.Writer, e rollout.Entry) {
	wave, vehicle := "-", "-"
	if e.Wave > 0 {
		wave = fmt.Sprintf("wave %d", e.Wave)
	}
	if e.Vehicle != "" {
		vehicle = e.Vehicle
	}
	fmt.Fprintf(w, "%s  %-7s  %-12s  %-16s  %s\n", e.At.UTC().Format("2006-01-02T15:04:05.000Z"), wave, vehicle, e.What, oneLine(e.Why))
}

// verdictOf is the exit status of a runner that returned r: none when it
// is done (or was aborted as asked), an error otherwise.
func verdictOf(cmd string, r *rollout.Rollout) error {
	c := r.Count(0)
	switch r.Status {
	case rollout.Done:
		return nil
	case rollout.Halted:
		return fmt.Errorf("%s: rollout %s halted by its breaker: %d of %d vehicles with an outcome failed; `vigil-fleet rollout abort --rollback %s` undoes it where it went", cmd, r.Spec.ID, c.Failed, c.Outcomes(), r.Spec.ID)
	case rollout.Aborted:
		if r.Finished() {
			return fmt.Errorf("%s: rollout %s was aborted", cmd, r.Spec.ID)
		}
	}
	return fmt.Errorf("%s: interrupted with rollout %s %s; go on with `vigil-fleet rollout start --resume %s`", cmd, r.Spec.ID, r.Status, r.Spec.ID)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func joinIDs(ids []string, max int) string {
	if len(ids) <= max {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:max], ", ") + fmt.Sprintf(" and %d more", len(ids)-max)
}
