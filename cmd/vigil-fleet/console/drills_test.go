package console

import (
	"bytes"
	"encoding/json"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/agent/drill/render"
	"github.com/vigil-av/vigil/sync/drillstore"
)

// drillReport is a primary-hang report of veh-1 started at `at`, as a
// vehicle publishes it: 300 answers over 6 s, the shadow serving while
// the primary hung (2–4 s), a no-result at the switch.
func drillReport(at time.Time, passed bool) *drill.Report {
	id := at.UTC().Format("20060102T150405Z") + "-primary-hang"
	r := &drill.Report{Version: drill.ReportVersion, ID: id, Name: "primary-hang", Vehicle: "veh-1", Software: "0.3.1",
		Started: at, Ended: at.Add(6 * time.Second), Origin: "fleet:c-1", Passed: passed,
		Expect: drill.Expect{MaxFailover: 33 * time.Millisecond}}
	if !passed {
		r.Failures = []string{"fault: failover 41 ms > max 33 ms"}
	}
	tot := drill.Figures{Requests: 300, OK: 299, NoResult: map[string]int{"deadline": 1}, DetectionMS: 38, FailoverMS: 41,
		BackToPrimaryMS: 250, Availability: 299.0 / 300, DurableLagMS: 9, UnsyncedMax: 12, UnsyncedAgeMS: 800, DrainMS: -1}
	r.Totals = tot
	r.Phases = []drill.PhaseReport{
		{Name: "baseline", StartMS: 0, EndMS: 2000, Passed: true, Figures: drill.Figures{Requests: 100, OK: 100, DetectionMS: -1, FailoverMS: -1, BackToPrimaryMS: -1, Availability: 1, DrainMS: -1}},
		{Name: "fault", Fault: "hang primary", StartMS: 2000, EndMS: 4000, Passed: passed, Figures: tot},
		{Name: "recovery", StartMS: 4000, EndMS: 6000, Passed: true, Figures: drill.Figures{Requests: 100, OK: 100, DetectionMS: -1, FailoverMS: -1, BackToPrimaryMS: 250, Availability: 1, DrainMS: -1}},
	}
	for i := range 300 {
		t := float64(i) * 20
		s := drill.RequestSample{TMS: t, LatencyMS: 6 + float64(i%5), ServedBy: "primary", Status: "ok"}
		if t >= 2000 && t < 4250 {
			s.ServedBy, s.LatencyMS = "shadow", 15
		}
		if t == 2000 {
			s = drill.RequestSample{TMS: t, LatencyMS: 33, Status: "no_result", Reason: "deadline"}
		}
		r.Series.Requests = append(r.Series.Requests, s)
	}
	r.Series.Ladder = []drill.LadderSample{{TMS: 0, Backend: "primary", State: "healthy"}, {TMS: 0, Backend: "shadow", State: "healthy"},
		{TMS: 2038, Backend: "primary", State: "failed"}, {TMS: 4200, Backend: "primary", State: "healthy"}}
	r.Series.Backlog = []drill.BacklogSample{{TMS: 0, Unsynced: 2, Link: "up"}, {TMS: 3000, Unsynced: 12, Link: "up"}, {TMS: 6000, Unsynced: 0, Link: "up"}}
	r.Series.Marks = []drill.Mark{{TMS: 2000, Phase: "fault", Label: "inject hang primary"}, {TMS: 4000, Phase: "fault", Label: "clear"}}
	return r
}

// drillStore writes veh-1's reports into a real drill store: an older
// failed one, a newer passed one and an aborted one in between.
func drillStore(t *testing.T, dir string) []*drill.Report {
	t.Helper()
	s, err := drillstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, newest, aborted := drillReport(t0, false), drillReport(t0.Add(2*time.Hour), true), drillReport(t0.Add(time.Hour), false)
	aborted.Aborted, aborted.ID = "the vehicle moved", aborted.ID+"-2"
	for _, r := range []*drill.Report{old, newest, aborted} {
		if err := s.SaveReport("veh-1", r); err != nil {
			t.Fatal(err)
		}
	}
	return []*drill.Report{newest, aborted, old}
}

func TestDrillDirList(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "drills")
	d := NewDrillDir(dir, render.Options{})
	if ds, err := d.Drills("veh-1"); ds != nil || err != nil {
		t.Fatalf("a store not made yet: %v, %v; want nothing and no error", ds, err)
	}
	want := drillStore(t, dir)
	// A temporary file the store leaves while it writes is no report.
	if err := os.WriteFile(filepath.Join(dir, "reports", "veh-1", ".x.json.tmp"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := d.Drills("veh-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("%d drills, want 3: %+v", len(ds), ds)
	}
	for i, r := range want {
		if ds[i].ID != r.ID || !ds[i].At.Equal(r.Started) || ds[i].Report != "/drills/veh-1/"+r.ID+"/" {
			t.Errorf("drill %d: %+v, want report %s (newest first)", i, ds[i], r.ID)
		}
	}
	if !ds[0].Passed || ds[1].Passed || ds[2].Passed {
		t.Errorf("verdicts %v %v %v, want pass, fail (aborted), fail", ds[0].Passed, ds[1].Passed, ds[2].Passed)
	}
	for _, w := range []string{"300 requests, 0 missed, 1 no-result", "detection 38 ms, failover 41 ms, back to primary 250 ms", "availability 99.667 %", "unsynced max 12 (oldest 800 ms)"} {
		if !strings.Contains(ds[0].Summary, w) {
			t.Errorf("summary %q lacks %q", ds[0].Summary, w)
		}
	}
	if !strings.HasPrefix(ds[1].Summary, "aborted: the vehicle moved; ") || !strings.HasSuffix(ds[2].Summary, "1 expectation(s) missed") {
		t.Errorf("summaries %q and %q", ds[1].Summary, ds[2].Summary)
	}
	if ds, err := d.Drills("veh-2"); ds != nil || err != nil {
		t.Errorf("a vehicle without drills: %v, %v", ds, err)
	}
	if _, err := d.Drills("../veh-1"); err == nil {
		t.Error("a vehicle id with a path in it was taken")
	}

	// A report rewritten is read again; a broken one is named, and the
	// others still listed.
	s, _ := drillstore.Open(dir)
	changed := drillReport(t0.Add(2*time.Hour), true)
	changed.Totals.Requests = 123456
	if err := s.SaveReport("veh-1", changed); err != nil {
		t.Fatal(err)
	}
	broken := s.ReportPath("veh-1", "20261204T170000Z-broken")
	if err := os.WriteFile(broken, []byte(`{"id": `), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err = d.Drills("veh-1")
	if err == nil || !strings.Contains(err.Error(), broken) {
		t.Errorf("a broken report: error %v, want one naming %s", err, broken)
	}
	if len(ds) != 3 || !strings.HasPrefix(ds[0].Summary, "123456 requests") {
		t.Errorf("after a rewrite and a broken file: %d drills, the newest %q", len(ds), ds[0].Summary)
	}
}

// drillServer is the console over the fixture with veh-1's drills.
func drillServer(t *testing.T, a Access) (*Server, *DrillDir, []*drill.Report) {
	t.Helper()
	now := t0.Add(3 * time.Hour)
	dir := filepath.Join(t.TempDir(), "drills")
	reps := drillStore(t, dir)
	src := fixtureSources(t, now)
	d := NewDrillDir(dir, render.Options{})
	src.Drills = d
	if a.Addr == "" {
		a.Addr = "127.0.0.1:0"
	}
	s, err := New(Config{Access: a, Sources: src, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s, d, reps
}

func TestDrillPages(t *testing.T) {
	s, d, reps := drillServer(t, Access{})
	h := s.Handler()
	newest := "/drills/veh-1/" + reps[0].ID + "/"
	_, body := get(t, h, "/", nil)
	for _, w := range []string{`<a href="` + newest + `">primary-hang</a> <span class="drill drill-pass">pass</span> 1h0m0s ago`, "3 drills listed", "the drill store " + d.Dir()} {
		if !strings.Contains(body, w) {
			t.Errorf("/ lacks %s", w)
		}
	}
	_, body = get(t, h, "/vehicles/veh-1", nil)
	for _, w := range []string{`<span class="drill drill-fail">FAIL</span> <a href="/drills/veh-1/` + reps[1].ID + `/">primary-hang</a>`, "aborted: the vehicle moved"} {
		if !strings.Contains(body, w) {
			t.Errorf("/vehicles/veh-1 lacks %s", w)
		}
	}

	resp, page := get(t, h, newest, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("%s: %d %s\n%s", newest, resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "style-src "+render.StyleSource()) || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("report page's CSP %q", csp)
	}
	for _, w := range []string{"Drill primary-hang on veh-1", "PASS", `href="/vehicles/veh-1"`, "41.0 ms", `href="/static/favicon.svg"`} {
		if !strings.Contains(page, w) {
			t.Errorf("report page lacks %s", w)
		}
	}
	srcs := regexp.MustCompile(`<img src="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(srcs) != 3 {
		t.Fatalf("report page has %d images, want 3", len(srcs))
	}
	for _, m := range srcs {
		if !strings.HasPrefix(m[1], newest) {
			t.Errorf("image %s not under %s", m[1], newest)
		}
		resp, b := get(t, h, m[1], nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
			t.Errorf("%s: %d %s", m[1], resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		img, err := png.Decode(strings.NewReader(b))
		if err != nil || img.Bounds().Dx() != 1000 || img.Bounds().Dy() != 360 {
			t.Errorf("%s: %v %v", m[1], err, img.Bounds())
		}
	}
	resp, b := get(t, h, newest+"report.json", nil)
	var back drill.Report
	if err := json.Unmarshal([]byte(b), &back); err != nil || resp.StatusCode != 200 || back.ID != reps[0].ID || len(back.Series.Requests) != 300 {
		t.Errorf("report.json: %d %v %q", resp.StatusCode, err, back.ID)
	}

	for path, code := range map[string]int{
		"/drills/veh-1/" + reps[0].ID:                   http.StatusMovedPermanently,
		"/drills/veh-1/" + reps[0].ID + "/other.png":    404,
		"/drills/veh-1/nothing/":                        404,
		"/drills/veh-9/" + reps[0].ID + "/":             404,
		"/drills/..%2fetc/" + reps[0].ID + "/":          404,
		"/drills/veh-1/" + reps[0].ID + "/x/ladder.png": 404,
		"/drills/veh-1/":                                404,
	} {
		if resp, body := get(t, h, path, nil); resp.StatusCode != code {
			t.Errorf("%s: %d, want %d\n%s", path, resp.StatusCode, code, body)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		r := httptest.NewRequest(m, "http://127.0.0.1:8480"+newest, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", m, newest, w.Code)
		}
	}
	r := httptest.NewRequest(http.MethodHead, "http://127.0.0.1:8480"+newest+"latency.png", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Header().Get("Content-Type") != "image/png" {
		t.Errorf("HEAD latency.png: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
}

// TestDrillPagesDrawOnce: a page and its images asked for at once (as a
// browser does) are drawn once, and a rewritten report is drawn again.
func TestDrillPagesDrawOnce(t *testing.T) {
	s, d, reps := drillServer(t, Access{})
	h := s.Handler()
	base := "/drills/veh-1/" + reps[0].ID + "/"
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := base + []string{"", "latency.png", "ladder.png", "backlog.png"}[i%4]
			r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8480"+path, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 || w.Body.Len() == 0 {
				t.Errorf("%s: %d, %d bytes", path, w.Code, w.Body.Len())
			}
		}()
	}
	wg.Wait()
	if n := d.draws.Load(); n != 1 {
		t.Errorf("drawn %d times, want once", n)
	}
	st, _ := drillstore.Open(d.Dir())
	changed := drillReport(reps[0].Started, false)
	if err := st.SaveReport("veh-1", changed); err != nil {
		t.Fatal(err)
	}
	// The size changed; set a later time too, for coarse clocks.
	later := time.Now().Add(time.Minute)
	os.Chtimes(st.ReportPath("veh-1", changed.ID), later, later)
	if _, page := get(t, h, base, nil); !strings.Contains(page, "FAIL") || d.draws.Load() != 2 {
		t.Errorf("a rewritten report: draws %d, FAIL on the page %v", d.draws.Load(), strings.Contains(page, "FAIL"))
	}
}

// TestDrillPagesNeedAccess: the drill pages are behind the console's
// token like the rest.
func TestDrillPagesNeedAccess(t *testing.T) {
	tok := "0123456789abcdef0123"
	s, _, reps := drillServer(t, Access{TokenFile: writeToken(t, tok+"\n", 0o600)})
	h := s.Handler()
	path := "/drills/veh-1/" + reps[0].ID + "/latency.png"
	if resp, _ := get(t, h, path, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", resp.StatusCode)
	}
	resp, b := get(t, h, path, map[string]string{"Authorization": "Bearer " + tok})
	if resp.StatusCode != 200 || !bytes.HasPrefix([]byte(b), []byte("\x89PNG")) {
		t.Errorf("with the token: %d", resp.StatusCode)
	}
}

// TestDrillReportEvent: the events stream's drill_report (a whole report)
// is one short timeline line, not the report's JSON.
func TestDrillReportEvent(t *testing.T) {
	rep := drillReport(t0, false)
	rep.Aborted = "the vehicle moved"
	raw, err := json.Marshal(map[string]any{"type": "drill_report", "report": rep})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	got := describe("drill_report", m)
	want := "drill primary-hang (report " + rep.ID + "): FAIL, aborted: the vehicle moved, 1 expectation(s) missed"
	if got != want {
		t.Errorf("describe: %q, want %q", got, want)
	}
}

// TestDrillRunsPage: /drills/ lists the fleet's runs from the drill
// store, each vehicle's outcome linking its report, and /api/drills has
// them as stored.
func TestDrillRunsPage(t *testing.T) {
	s, d, reps := drillServer(t, Access{})
	h := s.Handler()
	_, body := get(t, h, "/drills/", nil)
	if !strings.Contains(body, "No fleet drill run yet") {
		t.Errorf("/drills/ without runs:\n%s", body)
	}
	st, _ := drillstore.Open(d.Dir())
	id, err := st.NewRunID("primary-hang", reps[0].Started)
	if err != nil {
		t.Fatal(err)
	}
	run := &drillstore.Run{Version: drillstore.RunVersion, ID: id, Name: "primary-hang", Started: reps[0].Started,
		Ended: reps[0].Ended, Asked: []string{"veh-1", "veh-2"}, Vehicles: []drillstore.VehicleRun{{Vehicle: "veh-1"},
			{Vehicle: "veh-2", Outcome: drillstore.Refused, Code: "unsafe", Message: "the vehicle moves", Moving: true}}}
	run.Vehicles[0].Record(reps[0])
	run.Summarize()
	if err := st.SaveRun(run); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, h, "/drills/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/drills/: %d\n%s", resp.StatusCode, body)
	}
	for _, w := range []string{
		`primary-hang <span class="drill drill-fail">FAIL</span> <small>run ` + id,
		"1 passed, 1 refused. 1 report: 300 requests, 0 missed, lowest availability 99.667 %",
		`<td data-label="Figure">failover</td><td data-label="Vehicles">1</td><td data-label="p50">41.0 ms</td>`,
		`<td data-label="Figure">drain</td><td data-label="Vehicles">0</td><td data-label="p50">—</td>`,
		`<a href="/drills/veh-1/` + reps[0].ID + `/">report</a>`, `>refused</span></td><td data-label="Report or why">the vehicle moves</td>`,
		`The first run of primary-hang in the drill store: none before it to compare with.`, `<a href="/drills/">Drills</a>`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("/drills/ lacks %s", w)
		}
	}
	// A second run of the drill is compared with the first.
	again := *run
	if again.ID, err = st.NewRunID("primary-hang", reps[0].Started.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	again.Started = again.Started.Add(time.Minute)
	if err := st.SaveRun(&again); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, h, "/drills/", nil); !strings.Contains(body, `Compared with the run before (`+id+`): <code>vigil-fleet drill show `+again.ID+`</code>`) {
		t.Errorf("/drills/ with two runs lacks the comparison of the second with the first:\n%s", body)
	}
	resp, body = get(t, h, "/api/drills", nil)
	var doc struct{ Runs []drillstore.Run }
	if err := json.Unmarshal([]byte(body), &doc); err != nil || resp.StatusCode != 200 || len(doc.Runs) != 2 || doc.Runs[0].ID != again.ID || doc.Runs[1].ID != id {
		t.Errorf("/api/drills: %d %v\n%s", resp.StatusCode, err, body)
	}

	// Without a drill store the page says so.
	plain, _ := newTestServer(t, Access{})
	if _, body := get(t, plain.Handler(), "/drills/", nil); !strings.Contains(body, "keeps no fleet runs: not configured (--drills or --sink)") {
		t.Errorf("/drills/ without a drill store:\n%s", body)
	}
}
