// Command vigil-fleet is the fleet operator's command line: signing keys,
// signed commands to vehicles over MQTT with their responses, the
// vehicles' liveness, and the cloud side of the telemetry link (the
// ingester into a sink directory, the sink's report and its compaction).
// The protocol is described in docs/fleet.md.
//
// One file per subcommand, each a setup function in the subcommands
// table of main.go: keygen.go, cmd.go (cmdlink.Sender), vehicles.go
// (presence.Watch), ingest.go (ingest.Ingester into a sink.Sink),
// report.go and compact.go (sink), checkpoint*.go (the checkpoint store,
// sync/blob), model*.go (model bundles, models/bundle: keygen, pack,
// sign, inspect, verify), serve.go (bundle delivery, sync/bundlelink),
// rollout*.go (fleet rollouts, sync/rollout), drill*.go (fleet drills,
// sync/drillstore); broker.go holds the broker
// and TLS flags they share.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/vigil-av/vigil/cmd/internal/cli"
	"github.com/vigil-av/vigil/internal/version"
)

type subcommand struct {
	name, args, summary string
	// setup defines the subcommand's flags on fs and returns what runs
	// it with the positional arguments once they are parsed.
	setup func(g *globals, fs *flag.FlagSet) func(ctx context.Context, args []string) error
}

var subcommands = []subcommand{
	{"keygen", "--out <dir|prefix>",
		"Make an ed25519 signing key pair: <prefix>.key (private, mode 0600) and <prefix>.pub (public, for the vehicles' sync.commands.trusted_keys); a directory gets fleet.key and fleet.pub. Prints the key id. Never overwrites a key.",
		setupKeygen},
	{"cmd", "[flags] --key <private key> <vehicle|all> <command> [name=value ...]",
		"Sign a command, send it to one vehicle (or to all on the fleet topic), wait for the responses and print them. Exits non-zero when any response is not ok, a vehicle waited for did not answer, or none answered. Commands: status; policy policy=<hot|warm|cold>; failover backend=<primary|shadow|degraded>; clear backend=<...>; log-level level=<debug|info|warn|error>; sync-now. policy, failover and clear are refused while the vehicle moves.",
		setupCmd},
	{"vehicles", "[flags]",
		"List the vehicles the broker knows of, judged by their heartbeats: online (a heartbeat within 3 of its intervals), offline (its last will fired, or it closed), or stale (its retained status says online but its last heartbeat is older than 3 intervals, or missing: a vehicle that died unseen, e.g. after a broker restored an old snapshot); with each one's status and when it was last seen.",
		setupVehicles},
	{"ingest", "--sink <dir> [flags]",
		"Run the cloud ingester: take every vehicle's telemetry and logs batches from the broker (shared subscription) into the sink directory and acknowledge them, until SIGINT or SIGTERM; then print the sink's report. The replica keeps a retained online status on vigil/v1/fleet/ingest/<replica>/status while subscribed (offline as its last will), which tells vehicles to resend what went nowhere while no ingester listened. After losing the broker it tries again at once, then every --reconnect-max (1 s).",
		setupIngest},
	{"serve", "--bundles <dir> [flags]",
		"Run the fleet's long-running service until SIGINT or SIGTERM: answer every vehicle's bundle downloads (requests on vigil/v1/<vehicle>/bundles/req, a shared subscription; answers on .../bundles/data) from the bundle store, a directory of packed, signed bundles (*.tar) served by their hash, never by their name: copy a bundle in under a dot name and rename it to <name>.tar. Prints what it served when it stops. docs/models.md describes the protocol. It also serves the read-only web console (docs/console.md) on --console-addr, 127.0.0.1:8480 by default.",
		setupServe},
	{"report", "--sink <dir> [--json]",
		"Print what a sink directory holds, per vehicle, store and stream: high-water mark, complete-through, records, gaps reported by the vehicle, evicted and missing ranges.",
		setupReport},
	{"compact", "--sink <dir>",
		"Merge the one-file-per-batch layout that earlier versions of the ingester wrote (<first>-<last>.batch) into segment files, which the ingester now appends to (a file per stream per hour). Safe while ingesters run and after a crash mid-way: every record stays stored exactly once. Prints what it merged.",
		setupCompact},
	{"checkpoint list", "[--store-dir <dir>] [--vehicle <v>]",
		"List the complete checkpoints in the fleet's checkpoint store, per vehicle and store, oldest first: id, kind, base, created, age, the streams' record counts, size, whether its chain is whole (every base back to a full present and consistent), and its last verification (never, or ok/FAIL, when, and whether the chunks were read back).",
		setupCheckpointList},
	{"checkpoint verify", "[--store-dir <dir>] [--vehicle <v>] [--read-data] [--subset i/m]",
		"Check the chain rules of every checkpoint in the checkpoint store; with --read-data read every chunk back and check its SHA-256 and the whole stream's. Prints each failure (checkpoint, chunk, offset) and a summary line; records each checkpoint's result in the catalog, which list shows; exits non-zero when anything fails.",
		setupCheckpointVerify},
	{"checkpoint export", "[--store-dir <dir>] --vehicle <v> [--store <id>] [--at <checkpoint>] --out <dir>",
		"Write the chain that ends at a checkpoint (default: the newest) into an empty directory as <out>/<id>/chunk-NNNNNN and manifest.json, the layout `vigild restore --from` reads; every chunk is checked as it is read and the copy verified.",
		setupCheckpointExport},
	{"checkpoint prune", "[--store-dir <dir>] --vehicle <v> --keep-full <n> [--grace 24h] [--dry-run]",
		"Cloud retention: keep the newest N full checkpoints, every checkpoint built on them and every base those need; delete the other catalog entries, then the blobs no kept checkpoint of any vehicle references and that were last put longer than --grace ago.",
		setupCheckpointPrune},
	{"model keygen", "--out <dir|prefix>",
		"Make an ed25519 model-signing key pair, separate from the command keys: <prefix>.key (private, mode 0600) and <prefix>.pub (public, for the vehicles' trusted model-signing keys); a directory gets model-signing.key and model-signing.pub. Prints the key id. Never overwrites a key.",
		setupModelKeygen},
	{"model pack", "--dir <model files> --name <n> --version <v> --min-vigil <x.y.z> --out <bundle.tar> [flags]",
		"Make an unsigned model bundle: every file under --dir with its SHA-256 and size, the contract read from the model (or --contract-from), and the name, version, roles, providers, tolerance and validity from the flags, in one tar with bundle.json first. Sign it next with `model sign`.",
		setupModelPack},
	{"model sign", "--key <model-signing key> [--out <bundle.tar>] [--valid-for <d>] <bundle>",
		"Sign a bundle (a tar, or a directory holding bundle.json) with a model-signing key, in place or into --out; refuses when a file is not what the manifest says. Prints the key id and the bundle's hash.",
		setupModelSign},
	{"model inspect", "[--json] <bundle>",
		"Print a bundle's manifest: name, version, roles, model, contract, requirements, validity, signer, hash and files. Checks nothing (model verify does).",
		setupModelInspect},
	{"model verify", "--trusted <pub>[,<pub>] [--floor name=version] [--providers cpu,cuda] [--vigil-version x.y.z] [--contract [role=]file] [--at time] <bundle>",
		"Run the vehicle's verification of a bundle: manifest, signature against the trusted keys, validity, Vigil version, providers, contract, anti-rollback floor, and every file's size and SHA-256. Exits non-zero with the reason of the first refusal; says what it could not check.",
		setupModelVerify},
	{"rollout start", "--bundle <file> --role <role> --vehicles v1,v2,...|--vehicles-file <f> [--waves 1,10,50,100%] [--max-failures 5%] [--min-vehicles n] --key <command key> [flags] | --resume <id> --key <command key>",
		"Roll a signed bundle out to a role over vehicles in waves: send model-deploy to each wave's vehicles, follow their deploy reports (vigil/v1/<vehicle>/deploy), start the next wave when every vehicle of the last committed or failed, and halt when the breaker trips (more than --max-failures of the vehicles with an outcome failed, once --min-vehicles have one). Prints each decision; runs until the rollout is done, halted or aborted, or until interrupted; --resume goes on with a stored rollout. Exits non-zero unless the rollout is done.",
		setupRolloutStart},
	{"rollout status", "[<id>] [--json]",
		"List the rollouts in the rollouts directory, or show one: its bundle, status, breaker, waves, the vehicles reached with their outcome and state, and every decision with when and why.",
		setupRolloutStatus},
	{"rollout pause", "<id>",
		"Pause a rollout: nothing new is sent (no wave starts, nothing is sent again); reports, timeouts and the breaker still count. A running start sees it within its --tick.",
		setupRolloutPause},
	{"rollout resume", "<id>",
		"Let a paused rollout go on.",
		setupRolloutResume},
	{"rollout abort", "<id> [--rollback --key <command key>]",
		"Abort a rollout: nothing more is deployed. With --rollback, send model-rollback to every vehicle sent the bundle that did not report a failure (the running start sends them, or this command when none runs).",
		setupRolloutAbort},
	{"drill run", "<name> --vehicles v1,v2,... [--only-parked] [--timeout 2m] [--drills <dir>] --key <command key> [flags]",
		"Run a standard drill on vehicles: subscribe to their drill reports (vigil/v1/<vehicle>/drill), send each the signed drill-run command, wait for every accepted vehicle's report (until --timeout), keep the reports and the run in the drill store, and print the fleet table: per vehicle pass or fail with its figures (requests, missed, detection, failover, back to primary, availability, unsynced backlog and RPO), the fleet's p50, p95 and max, and each figure beside the last run of the same drill. A vehicle that moves refuses: with --only-parked it is skipped, else it fails the run. Exits non-zero unless every vehicle passed or was skipped and one ran it.",
		setupDrillRun},
	{"drill list", "[--drills <dir>] [--json]",
		"List the fleet runs of drills in the drill store, newest first: id, drill, start, vehicles asked, passed, failed, skipped, other outcomes, the fleet's failover and detection p95, and the verdict.",
		setupDrillList},
	{"drill show", "<run id> [--drills <dir>] [--json]",
		"Print a stored run's fleet table, as drill run printed it, beside the run of the same drill before it.",
		setupDrillShow},
}

type globals struct {
	stdout, stderr io.Writer
}

func main() { cli.Main("vigil-fleet", run) }

func usage(w io.Writer, g *globals) {
	fmt.Fprintln(w, "usage: vigil-fleet <command> [flags] [args]")
	fmt.Fprintln(w, "       vigil-fleet --version")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The fleet operator's tool: signed commands to vehicles over MQTT, and the cloud end of")
	fmt.Fprintln(w, "the telemetry link. Flags may come before or after the arguments. The protocol and")
	fmt.Fprintln(w, "examples are in docs/fleet.md.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range subcommands {
		fmt.Fprintf(w, "  %-17s %s\n", c.name, c.args)
	}
	for _, c := range subcommands {
		fmt.Fprintf(w, "\nvigil-fleet %s %s\n", c.name, c.args)
		fmt.Fprintln(w, indent(wrap(c.summary, 76), "  "))
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.setup(g, fs)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The broker is --broker, else $VIGIL_BROKER, else tcp://localhost:1883. Use ssl://host:8883")
	fmt.Fprintln(w, "with --tls-ca, --tls-cert and --tls-key for the mutually authenticated link.")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr, g)
		return errors.New("no command given")
	}
	name := args[0]
	if subs := groupCommands(name); len(subs) > 0 {
		if len(args) < 2 || strings.HasPrefix(args[1], "-") || args[1] == "help" {
			usage(stderr, g)
			if len(args) > 1 && (args[1] == "help" || args[1] == "-h" || args[1] == "-help" || args[1] == "--help") {
				return flag.ErrHelp
			}
			return fmt.Errorf("%s: give a subcommand: %s or %s", name, strings.Join(subs[:len(subs)-1], ", "), subs[len(subs)-1])
		}
		name, args = name+" "+args[1], args[1:]
	}
	switch name {
	case "help", "-h", "-help", "--help":
		usage(stdout, g)
		return nil
	case "version", "-version", "--version":
		// vigil-fleet never links ONNX Runtime: the release the build pairs with.
		fmt.Fprintln(stdout, version.String("vigil-fleet", version.ONNXRuntime))
		return nil
	}
	for _, c := range subcommands {
		if c.name != name {
			continue
		}
		fs := flag.NewFlagSet("vigil-fleet "+name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprintf(stderr, "usage: vigil-fleet %s %s\n\n%s\n\n", name, c.args, wrap(c.summary, 78))
			fs.PrintDefaults()
		}
		runner := c.setup(g, fs)
		pos, err := parseInterleaved(fs, args[1:])
		if err != nil {
			return err
		}
		return runner(ctx, pos)
	}
	usage(stderr, g)
	return fmt.Errorf("unknown command %q", name)
}

// groupCommands lists the second words of the two-word subcommands whose
// first word is group ("checkpoint": list, verify, export, prune).
func groupCommands(group string) []string {
	var subs []string
	for _, c := range subcommands {
		if first, second, ok := strings.Cut(c.name, " "); ok && first == group {
			subs = append(subs, second)
		}
	}
	return subs
}

// parseInterleaved parses flags wherever they stand among the positional
// arguments; everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return pos, nil
		}
		consumed := len(rest) - len(left)
		if consumed > 0 && rest[consumed-1] == "--" {
			return append(pos, left...), nil
		}
		pos = append(pos, left[0])
		rest = left[1:]
	}
}

func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(s) {
		if n > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
