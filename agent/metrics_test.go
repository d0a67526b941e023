package agent

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/internal/version"
)

// scrape gets the metrics endpoint over HTTP and parses it with the
// Prometheus text parser (classic metric names only).
func scrape(t *testing.T, d *Daemon) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	r, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s, %v", r.Status, err)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("scrape content type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the text parser refuses the scrape: %v\n%s", err, body)
	}
	return fams, string(body)
}

// series finds the series of family name whose labels include want
// (name, value pairs); nil when there is none.
func series(fams map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	mf := fams[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == want[i] && l.GetValue() == want[i+1] }) {
				continue next
			}
		}
		return m
	}
	return nil
}

// counterOf is a counter's value; -1 when the series is missing.
func counterOf(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	if m := series(fams, name, labels...); m != nil && m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return -1
}

// TestMetricsEndpoint: the daemon's endpoint, scraped over HTTP and parsed
// with the Prometheus text parser after OK answers, a refused input and a
// NO_RESULT, has the answer latency as histograms by backend and outcome
// (buckets around the deadline, count and sum consistent with the
// answers), the counters by label agreeing with the status document, the
// build information, and the Go and process collectors. The status
// document carries the version, the commit, Go's version and the loaded
// ONNX Runtime's.
func TestMetricsEndpoint(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Drills.Allowed = true
	cfg.Metrics.Listen = "127.0.0.1:0"
	d, c := startDaemon(t, cfg)

	const ok = 5
	var total time.Duration // the socket's figure: the router's latency and more
	for range ok {
		resp := infer(t, c, 500*time.Millisecond)
		if !resp.OK() {
			t.Fatalf("answer %+v", resp)
		}
		total += resp.Total
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad := randomFrame()
	bad[0].Shape = []int64{1, 2, 3}
	bad[0].Float32 = bad[0].Float32[:6]
	if resp, err := c.Infer(ctx, &client.InferRequest{Budget: time.Second, Inputs: bad}); err != nil || resp.OK() {
		t.Fatalf("a frame of the wrong shape: %+v, %v", resp, err)
	}
	// Every rung hangs: the router waits to the deadline and answers
	// NO_RESULT.
	if err := control(t, c, client.ControlRequest{Op: client.OpSetVehicleState, Value: client.Parked}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []client.Backend{client.Primary, client.Shadow, client.Degraded} {
		if err := control(t, c, client.ControlRequest{Op: client.OpDrillFault, Backend: b, FaultKind: "hang"}); err != nil {
			t.Fatal(err)
		}
	}
	const hungBudget = 100 * time.Millisecond
	resp := infer(t, c, hungBudget)
	if resp.OK() {
		t.Fatalf("an answer with every rung hung: %+v", resp)
	}
	total += resp.Total
	for _, b := range []client.Backend{client.Primary, client.Shadow, client.Degraded} {
		if err := control(t, c, client.ControlRequest{Op: client.OpDrillFault, Backend: b, FaultKind: "none"}); err != nil {
			t.Fatal(err)
		}
	}

	st := fetchStatus(t, c)
	fams, body := scrape(t, d)
	checkCounters(t, fams, &st)
	checkHistogram(t, fams, &st, total, hungBudget)
	checkVersion(t, fams, &st)
	for _, name := range []string{"go_goroutines", "go_gc_duration_seconds", "go_memstats_heap_alloc_bytes", "go_info",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("the scrape lacks %s", name)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
		return
	}
	// What docs/metrics.md shows (go test -v).
	var excerpt []string
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, "vigil_answer_latency_seconds") && (strings.HasPrefix(line, "#") ||
			strings.Contains(line, `backend="primary",outcome="ok"`) || strings.Contains(line, `backend="none"`)) ||
			strings.HasPrefix(line, "vigil_no_result_total") || strings.HasPrefix(line, "vigil_build_info") {
			excerpt = append(excerpt, line)
		}
	}
	t.Logf("scrape excerpt:\n%s", strings.Join(excerpt, "\n"))
}

// checkCounters: the counters by label are the status document's (read
// just before the scrape): the router's exactly, since no request came
// between; the watchdog's and the store's at least, since the watchdog
// may still be digesting the hung request, and the store appending.
func checkCounters(t *testing.T, fams map[string]*dto.MetricFamily, st *status.Status) {
	t.Helper()
	n := &st.Counters
	if n.Requests != 7 || n.InvalidInputs != 1 {
		t.Errorf("status: %d requests, %d invalid inputs; want 7, 1", n.Requests, n.InvalidInputs)
	}
	for name, want := range map[string]uint64{"vigil_requests_total": n.Requests, "vigil_invalid_inputs_total": n.InvalidInputs,
		"vigil_deadline_misses_total": n.DeadlineMisses, "vigil_failover_answers_total": n.FailoverAnswers} {
		if got := counterOf(fams, name); got != float64(want) {
			t.Errorf("%s %v, status %d", name, got, want)
		}
	}
	for name, least := range map[string]uint64{"vigil_failovers_total": n.Failovers, "vigil_switches_total": n.Switches,
		"vigil_failbacks_total": n.Failbacks, "vigil_request_faults_total": n.RequestFaults, "vigil_mrm_entries_total": n.MRMEntries} {
		if got := counterOf(fams, name); got < float64(least) {
			t.Errorf("%s %v, status %d before it", name, got, least)
		}
	}
	var noResult uint64
	for reason, k := range n.NoResult {
		noResult += k
		if got := counterOf(fams, "vigil_no_result_total", "reason", reason); got != float64(k) {
			t.Errorf("vigil_no_result_total{reason=%q} %v, status %d", reason, got, k)
		}
	}
	if noResult != 1 {
		t.Errorf("status: NO_RESULT by reason %v, want one", n.NoResult)
	}
	for r := inference.ReasonMRM; r <= inference.ReasonClosed; r++ {
		if counterOf(fams, "vigil_no_result_total", "reason", r.String()) < 0 {
			t.Errorf("no vigil_no_result_total{reason=%q} series: a rate over it would not exist until it happens", r)
		}
	}
	for _, be := range st.Backends {
		if got := counterOf(fams, "vigil_served_total", "backend", be.Name); got != float64(be.Served) {
			t.Errorf("vigil_served_total{backend=%q} %v, status %d", be.Name, got, be.Served)
		}
		var states []string
		for _, state := range backendStates {
			if m := series(fams, "vigil_backend_state", "backend", be.Name, "state", state); m.GetGauge().GetValue() == 1 {
				states = append(states, state)
			}
		}
		if len(states) != 1 {
			t.Errorf("vigil_backend_state{backend=%q} is 1 for %v, want one state", be.Name, states)
		}
	}
	if len(st.Storage.Streams) < 4 {
		t.Errorf("storage streams %+v", st.Storage.Streams)
	}
	for _, x := range st.Storage.Streams {
		if got := counterOf(fams, "vigil_storage_appended_total", "stream", x.Name); got < float64(x.Assigned) {
			t.Errorf("vigil_storage_appended_total{stream=%q} %v, status %d before it", x.Name, got, x.Assigned)
		}
		if m := series(fams, "vigil_storage_unsynced_records", "stream", x.Name); m == nil || m.GetGauge() == nil {
			t.Errorf("no gauge vigil_storage_unsynced_records{stream=%q}", x.Name)
		}
	}
	if m := series(fams, "vigil_sync_state", "state", "off"); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("vigil_sync_state{state=\"off\"} is not 1 with sync off")
	}
}

// checkHistogram: vigil_answer_latency_seconds counts every answer once
// (not the refused input), by backend and outcome, with the buckets
// around the deadline; its sums stay under the socket's totals; the hung
// request's NO_RESULT lies past half its budget.
func checkHistogram(t *testing.T, fams map[string]*dto.MetricFamily, st *status.Status, total, hungBudget time.Duration) {
	t.Helper()
	mf := fams["vigil_answer_latency_seconds"]
	if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("vigil_answer_latency_seconds: %v", mf)
	}
	if len(mf.GetMetric()) != 7 {
		t.Errorf("%d latency series, want 7 (3 backends × ok, failover; none × no_result)", len(mf.GetMetric()))
	}
	var count uint64
	var sum float64
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		var bounds []float64
		var last uint64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
			if b.GetCumulativeCount() < last || b.GetCumulativeCount() > h.GetSampleCount() {
				t.Errorf("%v: bucket le=%g holds %d after %d, of %d", m.GetLabel(), b.GetUpperBound(), b.GetCumulativeCount(), last, h.GetSampleCount())
			}
			last = b.GetCumulativeCount()
		}
		// The +Inf bucket last, holding every sample.
		if want := append(slices.Clone(latencyBuckets), math.Inf(1)); !slices.Equal(bounds, want) {
			t.Errorf("%v: bucket bounds %v, want %v", m.GetLabel(), bounds, want)
		}
		if last != h.GetSampleCount() {
			t.Errorf("%v: the +Inf bucket holds %d of %d", m.GetLabel(), last, h.GetSampleCount())
		}
		if h.GetSampleCount() == 0 && h.GetSampleSum() != 0 {
			t.Errorf("%v: sum %g of no sample", m.GetLabel(), h.GetSampleSum())
		}
		count += h.GetSampleCount()
		sum += h.GetSampleSum()
	}
	if want := st.Counters.Requests - st.Counters.InvalidInputs; count != want {
		t.Errorf("the histograms count %d answers, the status %d", count, want)
	}
	if sum <= 0 || sum > total.Seconds() {
		t.Errorf("the histograms sum %gs; the socket's totals %v", sum, total)
	}
	for _, be := range st.Backends {
		var served uint64
		for _, outcome := range []string{outcomeOK, outcomeFailover} {
			if m := series(fams, "vigil_answer_latency_seconds", "backend", be.Name, "outcome", outcome); m != nil {
				served += m.GetHistogram().GetSampleCount()
			}
		}
		if served != be.Served {
			t.Errorf("%s: the histograms count %d answers, status %d served", be.Name, served, be.Served)
		}
	}
	nr := series(fams, "vigil_answer_latency_seconds", "backend", "none", "outcome", outcomeNoResult).GetHistogram()
	if nr.GetSampleCount() != 1 || nr.GetSampleSum() < hungBudget.Seconds()/2 {
		t.Errorf("NO_RESULT: %d answers, %gs; want 1 past %v", nr.GetSampleCount(), nr.GetSampleSum(), hungBudget/2)
	}
	for _, b := range nr.GetBucket() {
		if b.GetUpperBound() <= hungBudget.Seconds()/2 && b.GetCumulativeCount() != 0 {
			t.Errorf("NO_RESULT after %v counted in le=%g", hungBudget, b.GetUpperBound())
		}
	}
}

// checkVersion: the build information in the metrics and the status.
func checkVersion(t *testing.T, fams map[string]*dto.MetricFamily, st *status.Status) {
	t.Helper()
	info, err := inference.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != version.Version || st.Commit != version.Commit || st.GoVersion != runtime.Version() ||
		st.Runtime.Version != info.Version || st.Runtime.Version == "" {
		t.Errorf("status: version %q commit %q go %q onnxruntime %q; want %q %q %q %q", st.Version, st.Commit, st.GoVersion,
			st.Runtime.Version, version.Version, version.Commit, runtime.Version(), info.Version)
	}
	m := series(fams, "vigil_build_info", "version", version.Version, "commit", version.Commit,
		"onnxruntime_version", info.Version, "go_version", runtime.Version())
	if m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("vigil_build_info: %v", fams["vigil_build_info"])
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	validateStatus(t, statusSchema(t), raw)
}

// TestMetricsLatencyExact: answers taken from the router directly, whose
// latencies the test knows to the nanosecond, move the histograms by
// exactly their buckets and their sum; an observation costs no allocation
// (inference's TestRouterWithObserverDoesNotAllocate shows that the
// router's call of an observer costs none either).
func TestMetricsLatencyExact(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Metrics.Listen = "127.0.0.1:0"
	d, _ := startDaemon(t, cfg)
	be := d.backends[0]
	in, out := be.NewInputs(), be.NewOutputs()
	before, _ := scrape(t, d)

	want := map[[2]string][]time.Duration{}
	var ans inference.Answer
	for i := range 21 {
		deadline := time.Now().Add(time.Second)
		if i == 20 {
			deadline = time.Now().Add(-time.Millisecond) // NO_RESULT
		}
		if err := d.router.Infer(context.Background(), deadline, in, out, &ans); err != nil {
			t.Fatal(err)
		}
		key := [2]string{"none", outcomeNoResult}
		if ans.Status == inference.StatusOK {
			key = [2]string{ans.ServedBy.String(), outcomeOK}
			if ans.ServedBy != ans.Active {
				key[1] = outcomeFailover
			}
		} else if i != 20 {
			t.Fatalf("answer %d: %+v", i, ans)
		}
		want[key] = append(want[key], ans.Latency)
	}
	after, _ := scrape(t, d)
	for key, lat := range want {
		h0 := series(before, "vigil_answer_latency_seconds", "backend", key[0], "outcome", key[1]).GetHistogram()
		h1 := series(after, "vigil_answer_latency_seconds", "backend", key[0], "outcome", key[1]).GetHistogram()
		var sum float64
		for _, l := range lat {
			sum += l.Seconds()
		}
		if n := h1.GetSampleCount() - h0.GetSampleCount(); n != uint64(len(lat)) {
			t.Errorf("%v: %d more answers, want %d", key, n, len(lat))
		}
		if ds := h1.GetSampleSum() - h0.GetSampleSum(); math.Abs(ds-sum) > 1e-9 {
			t.Errorf("%v: the sum grew by %g s, the answers took %g s", key, ds, sum)
		}
		for i, b := range h1.GetBucket() {
			var in uint64
			for _, l := range lat {
				if l.Seconds() <= b.GetUpperBound() {
					in++
				}
			}
			if got := b.GetCumulativeCount() - h0.GetBucket()[i].GetCumulativeCount(); got != in {
				t.Errorf("%v: bucket le=%g grew by %d, want %d (%v)", key, b.GetUpperBound(), got, in, lat)
			}
		}
	}

	answers := []inference.Answer{
		{Status: inference.StatusOK, ServedBy: 0, Active: 0, Latency: 3 * time.Millisecond},
		{Status: inference.StatusOK, ServedBy: 2, Active: 0, Latency: 31 * time.Millisecond},
		{Status: inference.StatusNoResult, Reason: inference.ReasonDeadline, Latency: 34 * time.Millisecond},
	}
	for i := range answers {
		if allocs := testing.AllocsPerRun(100, func() { d.latency.ObserveAnswer(answers[i].Summary()) }); allocs != 0 {
			t.Errorf("observing %+v allocates %v times", answers[i], allocs)
		}
	}
}

// TestMetricsDocumented: every metric the daemon sends has its row (name,
// type, labels, meaning) in docs/metrics.md, and every vigil_ metric with
// such a row is sent.
func TestMetricsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(vigil_[a-z_]+)` \\| (counter|gauge|histogram) \\|").FindAllStringSubmatch(string(raw), -1) {
		documented[m[1]] = true
	}
	sent := map[string]bool{"vigil_answer_latency_seconds": true}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, d := range newMetricDescs().all() {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		sent[m[1]] = true
	}
	for name := range sent {
		if !documented[name] {
			t.Errorf("%s is sent but has no row in docs/metrics.md", name)
		}
	}
	for name := range documented {
		if !sent[name] {
			t.Errorf("docs/metrics.md has a row for %s, which is not sent", name)
		}
	}
}
