package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-av/vigil/agent"
	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/storage"
)

type restartFlags struct {
	rounds, records int
	quick           bool
	vigild, models  string
	library, gpu    string
	mosquitto, dir  string
	timeout         time.Duration
}

// restartAbout is the suite's description in its --help.
const restartAbout = `The daemon's recovery time. Fills vigild's telemetry buffer with a backlog
of request summaries (a vehicle that was offline): --records, and what
each start drains before it is killed on top. Starts a Mosquitto, the
ingester and the real vigild (a process of its own: the three demo models,
hot policy, 33 ms deadline, the cloud link on), then --rounds times kills
it with SIGKILL and starts it again, timing from the launch of the new
process until its socket accepts a connection, until the first OK answer
to a 1×3×66×200 frame with a 33 ms deadline, and until the ingester
acknowledges the first batch of the backlog it stored from the new boot
(the link draining again; batches sent again that it had stored before do
not count). The first start, after the buffer was filled and closed
cleanly, is not timed. Each round also prints the CPU time vigild used
until its first answer and when it logged its start phases.`

func parseRestartFlags(args []string, stderr io.Writer) (restartFlags, error) {
	var f restartFlags
	fs := flag.NewFlagSet("vigil-bench restart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.rounds, "rounds", 5, "kill-and-restart rounds timed")
	fs.IntVar(&f.records, "records", 1_000_000, "records of backlog in the buffer before the first start")
	fs.BoolVar(&f.quick, "quick", false, "3 rounds")
	fs.StringVar(&f.vigild, "vigild", "", "the vigild executable (default: built from this module with go build)")
	fs.StringVar(&f.models, "models", "", "directory of the demo models (default: build/models if present, else generated)")
	fs.StringVar(&f.library, "ort-library", "", "ONNX Runtime shared library for vigild (ort_library)")
	fs.StringVar(&f.gpu, "gpu-provider", "cpu", "provider of the primary and shadow")
	fs.StringVar(&f.mosquitto, "mosquitto", "", "the mosquitto executable (default: on PATH or Debian's location)")
	fs.StringVar(&f.dir, "dir", "", "parent of the suite's working directory (the buffer, the sink; default: the system's temporary directory)")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "how long one start may take to answer and to drain")
	if err := parseSuite(fs, "restart", restartAbout, args, stderr); err != nil {
		return f, err
	}
	if f.quick {
		f.rounds = 3
	}
	switch {
	case f.rounds < 1:
		return f, fmt.Errorf("--rounds %d: need at least 1", f.rounds)
	case f.records < 1000:
		return f, fmt.Errorf("--records %d: need at least 1000", f.records)
	case f.timeout <= 0:
		return f, fmt.Errorf("--timeout %v: want a positive duration", f.timeout)
	}
	return f, nil
}

// restartRig is what every start of the suite uses.
type restartRig struct {
	f       restartFlags
	bin     string
	config  string
	socket  string
	work    string
	cloud   *restartCloud
	req     *client.InferRequest
	started int
}

// startTiming is one start's figures.
type startTiming struct {
	first   firstAnswer
	drain   time.Duration // launch to the first stored batch of the backlog
	cpu     time.Duration // CPU time vigild used until its first answer
	boot    uint32
	backlog uint64 // inference records waiting for the cloud at the first answer
	phases  []phase
}

func runRestart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseRestartFlags(args, stderr)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(f.dir, "vigil-bench-restart-")
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	defer os.RemoveAll(work)
	rig := &restartRig{f: f, work: work, socket: filepath.Join(work, "vigild.sock")}
	if rig.bin, err = vigildBinary(ctx, f.vigild, work); err != nil {
		return err
	}
	models, cleanup, err := benchModelDir(f.models)
	if err != nil {
		return err
	}
	defer cleanup()
	if rig.cloud, err = startRestartCloud(ctx, f, work); err != nil {
		return err
	}
	defer rig.cloud.close()
	cfg, err := rig.writeConfig(models)
	if err != nil {
		return err
	}
	t0 := time.Now()
	filled := f.records + (f.rounds+1)*drainedPerStart
	storeID, err := fillBacklog(ctx, cfg, filled)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "suite restart: vigild %s, demo models (primary and shadow on %s), Mosquitto on %s; backlog of %d records filled in %v\n",
		rig.bin, f.gpu, rig.cloud.broker.addr, filled, time.Since(t0).Round(time.Millisecond))
	if err := rig.cloud.listen(ctx, work, cfg.VehicleID, storeID, uint64(filled)); err != nil {
		return err
	}
	if rig.req, _, err = benchFrame(); err != nil {
		return err
	}
	rig.req.Budget = 33 * time.Millisecond

	p, first, err := rig.start(ctx)
	if err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	fmt.Fprintf(stdout, "first start (after a clean close, not timed): %s\n", first.line())
	var results []startTiming
	for round := 1; round <= f.rounds; round++ {
		p.kill()
		if p, first, err = rig.start(ctx); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		results = append(results, first)
		fmt.Fprintf(stdout, "round %d (SIGKILL, start): %s\n", round, first.line())
	}
	if err := p.stop(10 * time.Second); err != nil {
		return fmt.Errorf("the last vigild: %w; its log ends:\n%s", err, p.logTail(15))
	}
	printRestartSummary(stdout, results)
	return nil
}

// drainedPerStart is what the suite adds to the backlog for each start:
// about what a start drains before it is killed (one window of the
// uploader, 16 batches of up to 4096 summaries), so that every start
// finds at least --records waiting. The RESULT line's backlog_min says
// what they found.
const drainedPerStart = 16 * 4096

// writeConfig writes vigild's configuration — the demo's, with the cloud
// link on — and returns it as vigild reads it.
func (r *restartRig) writeConfig(models string) (agent.Config, error) {
	lines := []string{
		"vehicle_id: bench-restart",
		"data_dir: " + filepath.Join(r.work, "data"),
		"models:",
		"  dir: " + models,
		"  primary: {path: primary.onnx, provider: " + r.f.gpu + "}",
		"  shadow: {path: shadow.onnx, provider: " + r.f.gpu + "}",
		"  degraded: {path: degraded.onnx, provider: cpu}",
		"watchdog: {policy: hot, deadline: 33ms}",
		"socket: {path: " + r.socket + "}",
		"log: {level: info, format: json}",
		"sync: {enabled: true, broker: " + r.cloud.url + "}",
	}
	if r.f.library != "" {
		lines = append(lines, "ort_library: "+r.f.library)
	}
	text := strings.Join(lines, "\n") + "\n"
	cfg, err := agent.ParseConfig(strings.NewReader(text))
	if err != nil {
		return cfg, fmt.Errorf("the suite's vigild configuration: %w\n%s", err, text)
	}
	r.config = filepath.Join(r.work, "vigild.yaml")
	return cfg, os.WriteFile(r.config, []byte(text), 0o600)
}

// start launches vigild and times it: the socket, the first OK answer,
// the first batch of the backlog stored in the cloud.
func (r *restartRig) start(ctx context.Context) (*vigildProc, startTiming, error) {
	var res startTiming
	r.started++
	p, err := startVigild(r.bin, r.config, filepath.Join(r.work, fmt.Sprintf("vigild-%d.log", r.started)))
	if err != nil {
		return nil, res, err
	}
	fail := func(err error) (*vigildProc, startTiming, error) {
		p.kill()
		return nil, res, err
	}
	fa, c, err := probeFirstAnswer(ctx, p, r.socket, r.req, r.f.timeout)
	if err != nil {
		return fail(err)
	}
	res.first = fa
	if res.cpu, err = p.cpuTime(); err != nil {
		c.Close()
		return fail(err)
	}
	raw, err := c.Status(ctx)
	c.Close()
	if err != nil {
		return fail(fmt.Errorf("status: %w", err))
	}
	var st status.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return fail(fmt.Errorf("status: %w", err))
	}
	res.boot = st.Storage.Boot
	for _, s := range st.Storage.Streams {
		if s.Name == storage.StreamInference {
			res.backlog = s.BacklogRecords
		}
	}
	at, err := r.cloud.acks.waitStored(ctx, res.boot, r.f.timeout-time.Since(p.launched))
	if err != nil {
		return fail(fmt.Errorf("%w; vigild's log ends:\n%s", err, p.logTail(15)))
	}
	res.drain = at.Sub(p.launched)
	if res.phases, err = logPhases(p.logPath, p.launched); err != nil {
		return fail(err)
	}
	return p, res, nil
}

func (r startTiming) line() string {
	return fmt.Sprintf("boot %d, backlog %d: socket accepting +%.1f ms, first OK answer +%.1f ms (request %d, %.0f ms of CPU), backlog draining +%.1f ms; logged: %s",
		r.boot, r.backlog, msOf(r.first.accept), msOf(r.first.answer), r.first.tries, msOf(r.cpu), msOf(r.drain), phaseLine(r.phases))
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// printRestartSummary prints the medians and maxima and the RESULT line.
func printRestartSummary(w io.Writer, rs []startTiming) {
	var accept, answer, drain []time.Duration
	backlogMin := rs[0].backlog
	for _, r := range rs {
		accept, answer, drain = append(accept, r.first.accept), append(answer, r.first.answer), append(drain, r.drain)
		backlogMin = min(backlogMin, r.backlog)
	}
	fmt.Fprintf(w, "%-22s %10s %10s\n", fmt.Sprintf("%d rounds", len(rs)), "p50", "max")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{{"socket accepting", accept}, {"first OK answer", answer}, {"backlog draining", drain}} {
		fmt.Fprintf(w, "%-22s %8.1fms %8.1fms\n", row.name, msOf(percentile(row.d, 0.5)), msOf(percentile(row.d, 1)))
	}
	fmt.Fprintf(w, "RESULT suite=restart rounds=%d first_answer_ms_p50=%.1f first_answer_ms_max=%.1f draining_ms_p50=%.1f draining_ms_max=%.1f accept_ms_p50=%.1f backlog_min=%d\n",
		len(rs), msOf(percentile(answer, 0.5)), msOf(percentile(answer, 1)), msOf(percentile(drain, 0.5)), msOf(percentile(drain, 1)),
		msOf(percentile(accept, 0.5)), backlogMin)
}
