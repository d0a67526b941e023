package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestServer(t *testing.T, a Access) (*Server, time.Time) {
	t.Helper()
	now := t0.Add(3 * time.Hour)
	if a.Addr == "" {
		a.Addr = "127.0.0.1:0"
	}
	s, err := New(Config{Access: a, Sources: fixtureSources(t, now), Refresh: 10 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s, now
}

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8480"+path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Result(), string(b)
}

func TestPages(t *testing.T) {
	s, _ := newTestServer(t, Access{})
	h := s.Handler()
	resp, body := get(t, h, "/", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{
		`<tr id="vehicle-veh-1" data-vehicle="veh-1" data-state="online">`,
		`data-vehicle="veh-2" data-state="offline"`, `data-vehicle="veh-3" data-state="stale"`, `data-vehicle="veh-4" data-state="unknown"`,
		`<meta http-equiv="refresh" content="10">`, `5 known, 1 online`,
		`2 records not in the cloud`, `oldest unsynced: not reported`,
		`<span class="rung rung-shadow">shadow</span> ok, 2h57m0s ago`,
		`000002-incremental, 2h0m0s ago, <span class="verify verify-ok">ok</span>`,
		`pilotnet v3 (primary): failed / trial_failed; rollout pilotnet-3 halted, <span class="breaker tripped">breaker tripped</span>`,
		`vigild 0.3.1, ONNX Runtime 1.24.3`, `<dt>Drills</dt><dd>not configured (--drills or --sink)</dd>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/ lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("/ holds a script element")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}

	resp, body = get(t, h, "/vehicles/veh-1", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/vehicles/veh-1: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{`<section id="timeline">`, `primary: suspect → failed (&lt;script&gt;alert(1)&lt;/script&gt; errors)`,
		`rollout pilotnet-3: `, `<code>vigil-fleet rollout status pilotnet-3</code>`,
		`<code>vigil-fleet checkpoint verify --vehicle veh-1 --read-data</code>`, `<td data-label="Backlog">2</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("/vehicles/veh-1 lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("an event's text reached the page unescaped")
	}
	for path, code := range map[string]int{"/vehicles/veh-9": 404, "/vehicles/..%2f": 404, "/nothing": 404, "/static/console.css": 200, "/static/favicon.svg": 200} {
		if resp, _ := get(t, h, path, nil); resp.StatusCode != code {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, code)
		}
	}
}

func TestJSON(t *testing.T) {
	s, _ := newTestServer(t, Access{})
	h := s.Handler()
	resp, body := get(t, h, "/api/vehicles", nil)
	var f Fleet
	if err := json.Unmarshal([]byte(body), &f); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/vehicles: %v %s\n%s", err, resp.Header.Get("Content-Type"), body)
	}
	if len(f.Vehicles) != 5 || f.Vehicles[0].ID != "veh-1" || !f.Vehicles[0].Online || *f.Vehicles[0].Backlog != 2 || f.Vehicles[0].Timeline != nil {
		t.Errorf("/api/vehicles: %+v", f.Vehicles)
	}
	_, body = get(t, h, "/api/vehicles/veh-1", nil)
	var one struct{ Vehicle Vehicle }
	if err := json.Unmarshal([]byte(body), &one); err != nil || len(one.Vehicle.Timeline) < 8 || one.Vehicle.Rung.ServedBy != "shadow" {
		t.Errorf("/api/vehicles/veh-1: %v\n%s", err, body)
	}
	if resp, body := get(t, h, "/api/vehicles/veh-9", nil); resp.StatusCode != 404 || !strings.Contains(body, `"error"`) {
		t.Errorf("/api/vehicles/veh-9: %d %s", resp.StatusCode, body)
	}
}

func TestReadOnly(t *testing.T) {
	s, _ := newTestServer(t, Access{})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest(m, "http://127.0.0.1:8480/api/vehicles", strings.NewReader("{}")))
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", m, w.Code)
		}
	}
}

// TestServeOverHTTP starts the server on a loopback port and reads a
// page the way a browser does.
func TestServeOverHTTP(t *testing.T) {
	s, _ := newTestServer(t, Access{})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	resp, err := http.Get(s.URL() + "api/vehicles")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("%s: %d", s.URL(), resp.StatusCode)
	}
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// reportPages is a DrillSource with pages of its own, to show the
// /drills/ mount; it reports no drill.
type reportPages struct{ NoDrills }

func (reportPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "report "+r.URL.Path)
}

func TestDrillSourcePages(t *testing.T) {
	s, _ := newTestServer(t, Access{})
	if resp, _ := get(t, s.Handler(), "/drills/x", nil); resp.StatusCode != 404 {
		t.Errorf("/drills/ without a drill source that serves pages: %d, want 404", resp.StatusCode)
	}
	s.cfg.Sources.Drills = reportPages{}
	resp, body := get(t, s.Handler(), "/drills/r-1/report.html", nil)
	if resp.StatusCode != 200 || body != "report /drills/r-1/report.html" {
		t.Errorf("/drills/ with a drill source that serves pages: %d %q", resp.StatusCode, body)
	}
}
