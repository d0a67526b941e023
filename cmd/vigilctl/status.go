package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-av/vigil/agent/status"
)

func cmdStatus(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("status", "[--json]", "Print the daemon's state: backends with state and reason, active rung, policy, counters, latency, failover times, availability.")
	asJSON := fs.Bool("json", false, "print the daemon's JSON document as it comes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := fetchStatus(ctx, g)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := fmt.Fprintf(g.stdout, "%s\n", raw)
		return err
	}
	var st status.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("status: the daemon's answer is not a status document: %w", err)
	}
	return printStatus(g.stdout, &st)
}

func fetchStatus(ctx context.Context, g *globals) ([]byte, error) {
	c, err := g.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	return c.Status(ctx)
}

func cmdWatch(ctx context.Context, g *globals, args []string) error {
	fs := g.subFlags("watch", "[--interval 1s]", "Print the status again every interval until interrupted.")
	every := fs.Duration("interval", time.Second, "refresh interval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *every < 100*time.Millisecond {
		return fmt.Errorf("--interval %v: at least 100ms", *every)
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, g.timeout)
		raw, err := c.Status(rctx)
		cancel()
		if err != nil {
			return err
		}
		var st status.Status
		if err := json.Unmarshal(raw, &st); err != nil {
			return err
		}
		fmt.Fprint(g.stdout, "\x1b[H\x1b[2J") // home, clear screen
		fmt.Fprintf(g.stdout, "%s   (every %v, ^C to stop)\n\n", time.Now().Format("15:04:05"), *every)
		if err := printStatus(g.stdout, &st); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func printStatus(w io.Writer, st *status.Status) error {
	active := st.ActiveRung
	if st.MRM {
		active = "NONE — MRM: " + st.MRMReason
	}
	fmt.Fprintf(w, "vehicle %s (%s)   vigild %s (commit %s)   up %s   ONNX Runtime %s\n", st.VehicleID, st.VehicleState, st.Version,
		shortCommit(st.Commit), (time.Duration(st.UptimeS) * time.Second).String(), st.Runtime.Version)
	fmt.Fprintf(w, "policy %s   deadline %gms   active rung %s   drills %s\n", st.Policy, st.DeadlineMs, active, onOff(st.DrillsAllowed))
	fmt.Fprintf(w, "plan %s\n\n", st.Plan)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tSTATE\tSINCE\tP95\tSERVED\tMODEL\tPROVIDER\tREASON")
	for _, b := range st.Backends {
		model, prov := "-", "-"
		if b.Loaded {
			model, prov = b.Model+" "+b.ModelVersion, b.Provider
		}
		state := b.State
		if b.Forced {
			state += " (forced)"
		}
		if b.Fault != "" {
			state += " [drill: " + b.Fault + "]"
		}
		since := "-"
		if b.SinceS > 0 {
			since = (time.Duration(b.SinceS*float64(time.Second)) / time.Second * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fms\t%d\t%s\t%s\t%s\n", b.Name, state, since, b.P95Ms, b.Served, model, prov, b.Reason)
	}
	tw.Flush()
	for _, b := range st.Backends {
		printWorker(w, b.Name, b.Worker)
	}
	c := st.Counters
	fmt.Fprintf(w, "\nrequests %d   invalid inputs %d   deadline misses %d   availability %.4f%%\n", c.Requests, c.InvalidInputs, c.DeadlineMisses, 100*st.Availability)
	fmt.Fprintf(w, "no result: %s\n", noResult(c.NoResult))
	fmt.Fprintf(w, "failovers %d   fail-backs %d   switches %d (deferred fail-backs %d)   divergences %d   outvoted %d   MRM entries %d   request faults %d\n",
		c.Failovers, c.Failbacks, c.Switches, c.DeferredFailbacks, c.Divergences, c.Outvoted, c.MRMEntries, c.RequestFaults)
	fmt.Fprintf(w, "latency p50 %.2fms   p90 %.2fms   p99 %.2fms   max %.2fms\n", st.Latency.P50, st.Latency.P90, st.Latency.P99, st.Latency.Max)
	fmt.Fprintf(w, "failover answers %d: last %.2fms, max %.2fms", c.FailoverAnswers, st.Failover.LastMs, st.Failover.MaxMs)
	if st.Failover.LastAt != "" {
		fmt.Fprintf(w, "   last failover %s (%s)", st.Failover.LastAt, st.Failover.LastReason)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "socket: %d connections, %d requests, %d refused\n",
		st.Socket.Connections, st.Socket.Requests, st.Socket.Refused)
	printStorage(w, &st.Storage)
	printSync(w, &st.Sync)
	printCheckpoints(w, &st.Checkpoints)
	printDeployments(w, &st.Deployments)
	printDrills(w, st.Drills)
	if r := st.Restored; r != nil {
		same := "unknown"
		if r.ConfigSame != nil {
			same = map[bool]string{true: "the same", false: "changed"}[*r.ConfigSame]
		}
		fmt.Fprintf(w, "restored: store %s from %s at checkpoint %s, %s; configuration %s; fleet commands issued before %s refused\n",
			r.Store, r.Parent, r.Checkpoint, r.RestoredAt, same, r.CommandsIssuedBefore)
	}
	printHealth(w, st.Health)
	if st.GPUFault != "" || st.GPUWarning != "" {
		fmt.Fprintf(w, "GPU: fault %q warning %q\n", st.GPUFault, st.GPUWarning)
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "allowed"
	}
	return "off"
}

func noResult(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// printDrills shows the drill going on and the newest report kept (the
// section is there when the configuration allows drills).
func printDrills(w io.Writer, s *status.DrillsStatus) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "drill: ")
	switch r := s.Running; {
	case r != nil:
		fmt.Fprintf(w, "%s running (%s), phase %s", r.Name, r.ID, r.Phase)
	default:
		fmt.Fprintf(w, "none running")
	}
	if l := s.Last; l != nil {
		verdict := map[bool]string{true: "passed", false: "FAILED"}[l.Passed]
		if l.Aborted != "" {
			verdict = "aborted: " + l.Aborted
		}
		fmt.Fprintf(w, "   last %s %s at %s: %s", l.Name, l.ID, l.Started, verdict)
	}
	fmt.Fprintf(w, "   %d reports kept (vigilctl drill report <id>)\n", s.Kept)
}

// printDeployments shows each role's latest model deployment.
func printDeployments(w io.Writer, s *status.DeploymentsStatus) {
	if s.State == "" {
		return // a daemon older than deployments
	}
	fmt.Fprintf(w, "model deployments: %s", s.State)
	if s.Why != "" {
		fmt.Fprintf(w, " (%s)", s.Why)
	}
	fmt.Fprintf(w, "   %d trusted keys   %d quarantined\n", s.TrustedKeys, s.Quarantined)
	for _, d := range s.Roles {
		h := d.Hash
		if len(h) > 12 {
			h = h[:12]
		}
		fmt.Fprintf(w, "  %-8s %s v%d (%s)   %s: %s", d.Role, d.Bundle, d.Version, h, d.State, d.Reason)
		switch {
		case d.State == "downloading" && d.BundleBytes > 0:
			fmt.Fprintf(w, "   %s of %s", mib(d.DownloadBytes), mib(d.BundleBytes))
		case d.State == "trial":
			fmt.Fprintf(w, "   trial %d compared, %d divergent, %d slow, %d errors", d.Trial.Compared, d.Trial.Divergent, d.Trial.Slow, d.Trial.Errors)
		case d.State == "promoted":
			fmt.Fprintf(w, "   health gate %d requests, %d suspects", d.Gate.Requests, d.Gate.Suspects)
		}
		if d.Quarantine != "" {
			fmt.Fprintf(w, "   quarantined: %s", d.Quarantine)
		}
		if d.Deadline != "" {
			fmt.Fprintf(w, "   until %s", d.Deadline)
		}
		if !d.Reported {
			fmt.Fprintf(w, "   (not reported yet: %s)", d.ReportError)
		}
		fmt.Fprintln(w)
	}
}

func printSync(w io.Writer, s *status.SyncStatus) {
	if s.State == "off" {
		fmt.Fprintf(w, "sync: off (%s)\n", s.Why)
		return
	}
	fmt.Fprintf(w, "sync: %s   broker %s   connections %d\n", s.State, s.Broker, s.Connects)
	if s.InFlightBudget > 0 {
		fmt.Fprintf(w, "  in flight up to %s", kib(s.InFlightBudget))
		if s.MinAckRTTMs > 0 {
			fmt.Fprintf(w, "   (lowest ack round trip %.1f ms, delivery %s/s)", s.MinAckRTTMs, kib(int(s.DeliveryRate)))
		}
		fmt.Fprintln(w)
	}
	if s.AckTimeoutMs > 0 {
		fmt.Fprintf(w, "  resend after %.0f ms without an ack (smoothed ack round trip %.1f ms)\n", s.AckTimeoutMs, s.SmoothedAckRTTMs)
	}
	for _, st := range s.Streams {
		fmt.Fprintf(w, "  %-10s acked through %d   in flight %d   sent %d   acked %d   resent %d   rejected %d",
			st.Stream, st.Cursor, st.InFlight, st.Sent, st.Acked, st.Resent, st.Rejected)
		if st.LastError != "" {
			fmt.Fprintf(w, "   last error: %s", st.LastError)
		}
		fmt.Fprintln(w)
	}
	if c := s.Commands; c != nil {
		fmt.Fprintf(w, "  commands: %d received, %d executed, %d failed, %d rejected, %d dropped (%d answered busy, %d over their key's rate), %d refusals unanswered",
			c.Received, c.Executed, c.Failed, c.Rejected, c.Dropped, c.Busy, c.OverKeyRate, c.Unanswered)
		if c.LastRejection != "" {
			fmt.Fprintf(w, "   last rejection: %s", c.LastRejection)
		}
		fmt.Fprintln(w)
	}
}

func printStorage(w io.Writer, s *status.StorageStatus) {
	fmt.Fprintf(w, "\ntelemetry buffer: %s", s.State)
	if s.Dir == "" {
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "   %s (boot %d)   disk %s of %s quota (peak %s), %s free   evictions %d\n",
		s.Dir, s.Boot, mib(s.DiskBytes), mib(s.QuotaBytes), mib(s.PeakBytes), mib(s.FreeBytes), s.Evictions)
	if s.Refusing != "" {
		fmt.Fprintf(w, "REFUSING RECORDS: %s\n", s.Refusing)
	}
	if s.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", s.LastError)
	}
	if s.Recovered != "" {
		fmt.Fprintf(w, "recovered: the old directory was unreadable and is now %s\n", s.Recovered)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tPRIORITY\tRECORDS\tDURABLE LAG\tUNSYNCED\tOLDEST UNSYNCED\tDROPPED\tEVICTED\tGAPS")
	for _, x := range s.Streams {
		var dropped uint64
		for _, n := range x.Dropped {
			dropped += n
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d (%s)\t%s\t%d\t%d\t%d\n", x.Name, x.Priority, x.Assigned, x.DurableLag,
			x.BacklogRecords, mib(x.BacklogBytes), (time.Duration(x.OldestAgeS * float64(time.Second))).Round(time.Millisecond), dropped, x.Evicted, x.Gaps)
	}
	tw.Flush()
}

func printHealth(w io.Writer, h *status.HealthStatus) {
	if h == nil {
		return
	}
	x := &h.Sample
	fmt.Fprintf(w, "\nhardware probe: %s (%s)\n", h.Probe, h.Why)
	if h.Error != "" {
		fmt.Fprintf(w, "probe error: %s\n", h.Error)
	}
	if h.Probe != "procfs" {
		flags := []string{}
		for _, f := range []struct {
			on   bool
			name string
		}{{x.GPULost, "GPU LOST"}, {x.GPUSuspect, "probe stuck"}, {x.XidFatal, fmt.Sprintf("fatal Xid %d", x.Xid)}, {x.ECCUncorrected, "uncorrected ECC"}, {x.Throttled, "throttled"}} {
			if f.on {
				flags = append(flags, f.name)
			}
		}
		fmt.Fprintf(w, "GPU: %.0f°C (slowdown at %.0f°C), %.0f%% busy, memory %s of %s, %.1f W, clocks held by %s %v\n",
			x.TemperatureC, x.SlowdownTempC, x.UtilizationPct, mib(int64(x.MemUsedBytes)), mib(int64(x.MemTotalBytes)), x.PowerW, x.ThrottleReasons, flags)
		for _, r := range x.Rails {
			fmt.Fprintf(w, "  rail %s %.2f W\n", r.Name, r.PowerW)
		}
	}
	sys := &x.System
	fmt.Fprintf(w, "host: load %.2f/%.2f on %d CPUs, memory %s available of %s", sys.Load1, sys.Load5, sys.CPUs, mib(int64(sys.MemAvailableKB)*1024), mib(int64(sys.MemTotalKB)*1024))
	if sys.MemPressureKnown {
		fmt.Fprintf(w, ", memory pressure %.1f%%", sys.MemPressureSome10)
	}
	for _, z := range sys.Thermal {
		fmt.Fprintf(w, ", %s %.1f°C", z.Name, z.TempC)
	}
	fmt.Fprintln(w)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// kib writes a byte count in KiB.
func kib(n int) string { return fmt.Sprintf("%.0f KiB", float64(n)/1024) }

// shortCommit cuts a commit to 12 hex digits, keeping a "-dirty" suffix.
func shortCommit(c string) string {
	rev, dirty := strings.CutSuffix(c, "-dirty")
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// printWorker prints the line of a backend's worker process; nothing for
// a backend in the daemon's own process.
func printWorker(w io.Writer, name string, ws *status.WorkerStatus) {
	if ws == nil {
		return
	}
	pid := "none"
	if ws.Pid > 0 {
		pid = fmt.Sprint(ws.Pid)
	}
	fmt.Fprintf(w, "%s worker: pid %s   restarts %d (kills %d, crashes %d)   memory %d MiB of %d MiB",
		name, pid, ws.Restarts, ws.Kills, ws.Crashes, ws.RSSBytes>>20, ws.MemoryLimitBytes>>20)
	if ws.KillGraceFrom != "" {
		fmt.Fprintf(w, "   kill grace %gms (%s)", ws.KillGraceMs, ws.KillGraceFrom)
	}
	if ws.LastEnd != "" {
		fmt.Fprintf(w, "   last end: %s (replaced in %.0fms)", ws.LastEnd, ws.LastRestartMs)
	}
	if ws.Down != "" {
		fmt.Fprintf(w, "   DOWN: %s", ws.Down)
	}
	fmt.Fprintln(w)
}
