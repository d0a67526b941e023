package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-av/vigil/internal/version"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// requireDeps is the switch that turns a skip for a missing dependency
// into a failure.
const requireDeps = "VIGIL_REQUIRE_DEPS"

func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv(requireDeps) == "1" {
		t.Fatalf("%s (scripts/console-tools.sh installs it; make deps fetches ONNX Runtime)", what)
	}
	t.Skipf("%s: skipped (scripts/console-tools.sh installs it; set %s=1 to fail instead)", what, requireDeps)
}

// proc is a command the test started, with its output.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(name), cmd: exec.Command(name, args...)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", p.name, tail(p.output(), 40))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// artifactsDir is where the screenshots go: $VIGIL_ARTIFACTS/console,
// else build/artifacts/console in the repository.
func artifactsDir(t *testing.T) string {
	dir := filepath.Join("..", "..", "..", "build", "artifacts", "console")
	if a := os.Getenv("VIGIL_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "console")
	}
	dir, _ = filepath.Abs(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fleet is the real fleet of the browser test: Mosquitto, vigild with
// the demo models and the cloud link, vigil-fleet ingest, and vigil-fleet
// serve with the console, every one a process of its own.
type fleet struct {
	t       *testing.T
	bin     string
	dir     string
	broker  *mqtttest.Broker
	vigild  *proc
	socket  string
	key     string // the operator's key files' prefix (.key, .pub)
	sink    string
	console string // its URL
}

func buildCommands(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	out, err := exec.Command("go", "build", "-o", bin+"/", "github.com/vigil-av/vigil/cmd/vigild",
		"github.com/vigil-av/vigil/cmd/vigilctl", "github.com/vigil-av/vigil/cmd/vigil-fleet").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	lib := filepath.Join("..", "..", "..", "third_party", "onnxruntime", version.ONNXRuntime, "linux-"+runtime.GOARCH, "libonnxruntime.so.1")
	if e := os.Getenv("VIGIL_ORT_LIBRARY"); e != "" {
		lib = e
	}
	if _, err := os.Stat(lib); err != nil {
		missing(t, "ONNX Runtime library "+lib)
	}
	lib, _ = filepath.Abs(lib)
	f := &fleet{t: t, dir: t.TempDir()}
	f.broker = mqtttest.Start(t, mqtttest.Options{})
	f.bin = buildCommands(t)
	models := filepath.Join(f.dir, "models")
	if _, err := demo.WriteAll(models); err != nil {
		t.Fatal(err)
	}
	f.socket = filepath.Join(f.dir, "vigild.sock")
	// The operator's command-signing key, trusted by the vehicle: the
	// test runs a drill fleet-wide (vigil-fleet drill run).
	f.key = filepath.Join(f.dir, "op")
	if out, err := exec.Command(filepath.Join(f.bin, "vigil-fleet"), "keygen", "--out", f.key).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	cfg := fmt.Sprintf(`vehicle_id: demo-1
data_dir: %s/data
ort_library: %s
models:
  dir: %s
  primary: {path: %s, provider: cpu}
  shadow: {path: %s, provider: cpu}
  degraded: {path: %s, provider: cpu}
socket: {path: %s}
log: {level: info, format: console}
drills: {allowed: true}
sync:
  enabled: true
  broker: %s
  heartbeat_interval: 1s
  commands: {enabled: true, trusted_keys: [%s.pub]}
`, f.dir, lib, models, demo.FileName(demo.RolePrimary), demo.FileName(demo.RoleShadow), demo.FileName(demo.RoleDegraded), f.socket, f.broker.URL(), f.key)
	if err := os.WriteFile(filepath.Join(f.dir, "vigild.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The ingester first: the checkpoint vigild takes as it starts goes
	// up at once, not after a resend.
	sink := filepath.Join(f.dir, "fleet", "sink")
	f.sink = sink
	ingest := start(t, filepath.Join(f.bin, "vigil-fleet"), "ingest", "--broker", f.broker.URL(), "--sink", sink)
	waitFor(t, 10*time.Second, "the ingester subscribed", func() bool {
		return strings.Contains(ingest.output(), "ckptrecv\tsubscribed") && strings.Contains(ingest.output(), "ingest\tsubscribed")
	})
	f.vigild = start(t, filepath.Join(f.bin, "vigild"), "--config", filepath.Join(f.dir, "vigild.yaml"))
	waitFor(t, 30*time.Second, "vigild's socket", func() bool { _, err := os.Stat(f.socket); return err == nil })
	bundles := filepath.Join(f.dir, "fleet", "bundles")
	if err := os.MkdirAll(bundles, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the sink directory", func() bool { _, err := os.Stat(sink); return err == nil })
	serve := start(t, filepath.Join(f.bin, "vigil-fleet"), "serve", "--broker", f.broker.URL(), "--bundles", bundles,
		"--sink", sink, "--console-addr", "127.0.0.1:0", "--console-sink-every", "1s")
	url := regexp.MustCompile(`"url": "(http://127\.0\.0\.1:\d+/)"`)
	waitFor(t, 10*time.Second, "the console's address in serve's log", func() bool {
		m := url.FindStringSubmatch(serve.output())
		if m != nil {
			f.console = m[1]
		}
		return m != nil
	})
	return f
}

func (f *fleet) vigilctl(args ...string) string {
	f.t.Helper()
	cmd := exec.Command(filepath.Join(f.bin, "vigilctl"), args...)
	cmd.Env = append(os.Environ(), "VIGIL_SOCKET="+f.socket)
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("vigilctl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// vehicle reads the console's JSON for one vehicle.
func (f *fleet) vehicle(id string) (Vehicle, bool) {
	resp, err := http.Get(f.console + "api/vehicles/" + id)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return Vehicle{}, false
	}
	var v struct{ Vehicle Vehicle }
	if err := json.Unmarshal(b, &v); err != nil {
		f.t.Fatalf("/api/vehicles/%s: %v\n%s", id, err, b)
	}
	return v.Vehicle, true
}

// TestConsoleInBrowser runs the console on a real fleet and looks at it
// with headless Chromium: the running vehicle is online in the table,
// with its failover (a drill's injected primary error) and its
// checkpoint verified; the pages hold at 375 px and 1280 px with no
// horizontal overflow and no console error; and the vehicle, its daemon
// killed, turns offline within the presence timeout.
func TestConsoleInBrowser(t *testing.T) {
	chromium, ok := chromiumPath()
	if !ok {
		missing(t, "chromium (Debian's chromium package)")
	}
	began := time.Now()
	f := startFleet(t)
	// Real data: requests, then a drill's fault on the primary and a
	// few more requests (a failover), then a verified checkpoint.
	f.vigilctl("vehicle", "parked")
	for range 3 {
		f.vigilctl("infer")
	}
	f.vigilctl("inject", "primary", "error")
	for range 8 {
		f.vigilctl("infer")
	}
	f.vigilctl("checkpoint", "now", "--kind", "incremental") // besides the one its schedule takes at start
	var last Vehicle
	defer func() {
		if t.Failed() {
			j, _ := json.MarshalIndent(last, "", "  ")
			t.Logf("demo-1 in the console's JSON when the test failed:\n%s", j)
		}
	}()
	waitFor(t, 20*time.Second, "the failover and a checkpoint in the console's JSON", func() bool {
		v, ok := f.vehicle("demo-1")
		last = v
		return ok && v.Online && len(v.Failovers) > 0 && v.Rung != nil && v.Rung.ServedBy != "primary" && v.Checkpoints >= 2
	})
	out, err := exec.Command(filepath.Join(f.bin, "vigil-fleet"), "checkpoint", "verify", "--sink", filepath.Join(f.dir, "fleet", "sink"), "--read-data").CombinedOutput()
	if err != nil {
		t.Fatalf("checkpoint verify: %v\n%s", err, out)
	}

	art := artifactsDir(t)
	b := startBrowser(t, chromium)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	selfCheck(ctx, t, b)
	checkDrill(ctx, t, b, f, art)
	checkLayouts(ctx, t, b, f, art)
	var timeline string
	// The drill's report reaches the sink in the events stream, maybe a
	// moment after the drill store has it.
	waitFor(t, 10*time.Second, "the drill in demo-1's timeline", func() bool {
		b.open(ctx, f.console+"vehicles/demo-1")
		b.eval(`document.querySelector('#timeline').innerText`, &timeline)
		return strings.Contains(timeline, "drill primary-errors (report ")
	})
	if !strings.Contains(timeline, "→ failed") || !strings.Contains(timeline, "checkpoint") || !strings.Contains(timeline, "drill primary-errors (report ") {
		t.Errorf("the vehicle page's timeline lacks the failover, the checkpoint or the drill:\n%s", timeline)
	}

	// Kill the vehicle's daemon: its last will says offline.
	f.vigild.cmd.Process.Signal(syscall.SIGKILL)
	f.vigild.cmd.Wait()
	killed := time.Now()
	timeout := 3 * time.Second // presence.StaleIntervals × the 1 s heartbeat
	b.viewport(1280, 900)
	var state string
	waitFor(t, timeout+2*time.Second, "demo-1 offline in the browser", func() bool {
		b.open(ctx, f.console)
		b.eval(`(() => { const r = document.querySelector('tr[data-vehicle="demo-1"]'); return r ? r.dataset.state : ""; })()`, &state)
		return state == "offline" || state == "stale"
	})
	t.Logf("demo-1 %s in the browser %v after the kill (presence timeout %v)", state, time.Since(killed).Round(10*time.Millisecond), timeout)
	b.screenshot(filepath.Join(art, "vehicles-offline-desktop-1280.png"))
	if p := b.pageProblems(); len(p) > 0 {
		t.Errorf("the pages reported %d errors:\n%s", len(p), strings.Join(p, "\n"))
	}
	t.Logf("browser test took %v (screenshots in %s)", time.Since(began).Round(100*time.Millisecond), art)
}

// checkLayouts opens the vehicles page and demo-1's page at phone and
// desktop widths: no horizontal overflow, a screenshot of each, and
// demo-1 online in the table with its failover and verified checkpoint.
func checkLayouts(ctx context.Context, t *testing.T, b *browser, f *fleet, art string) {
	t.Helper()
	for _, w := range []struct {
		name          string
		width, height int
	}{{"phone", 375, 812}, {"desktop", 1280, 900}} {
		b.viewport(w.width, w.height)
		for _, page := range []struct{ name, path string }{{"vehicles", ""}, {"vehicle", "vehicles/demo-1"}, {"drills", "drills/"}} {
			b.open(ctx, f.console+page.path)
			var o overflowResult
			b.eval(overflow, &o)
			if o.Viewport != w.width || o.Over > 0.5 {
				t.Errorf("%s page at %d px: %s", page.name, w.width, o)
			}
			shot := filepath.Join(art, fmt.Sprintf("%s-%s-%d.png", page.name, w.name, w.width))
			b.screenshot(shot)
			t.Logf("screenshot %s", shot)
		}
		b.open(ctx, f.console)
		var row struct {
			State, Text string
		}
		b.eval(`(() => { const r = document.querySelector('tr[data-vehicle="demo-1"]'); return r ? {state: r.dataset.state, text: r.innerText} : {state: "", text: ""}; })()`, &row)
		if row.State != "online" || !strings.Contains(row.Text, "online") {
			t.Errorf("at %d px the vehicles table shows demo-1 as %q:\n%s", w.width, row.State, row.Text)
		}
		if !strings.Contains(row.Text, "ok") || !strings.Contains(row.Text, "failover") {
			t.Errorf("at %d px demo-1's row lacks its verified checkpoint or its failover:\n%s", w.width, row.Text)
		}
	}
}

// selfCheck shows that the two checks can fail: a page wider than the
// phone overflows by the script's measure, and a page that logs an error
// is heard.
func selfCheck(ctx context.Context, t *testing.T, b *browser) {
	t.Helper()
	b.viewport(375, 812)
	b.open(ctx, `data:text/html,<meta name="viewport" content="width=device-width"><body><div id="wide" style="width:900px">wide</div><script>console.error("seen")</script></body>`)
	var o overflowResult
	b.eval(overflow, &o)
	if o.Over < 500 || !strings.Contains(o.Worst, "wide") {
		t.Errorf("a 900 px element in a 375 px page: %s, want it measured", o)
	}
	waitFor(t, 5*time.Second, "the page's console error heard", func() bool { return len(b.pageProblems()) > 0 })
	b.mu.Lock()
	b.problems = nil
	b.mu.Unlock()
}

// checkDrill runs a standard drill on demo-1 fleet-wide (vigil-fleet
// drill run, which keeps the report in the drill store serve reads) and
// opens the report's page from the vehicle's page: its three plots load
// in the browser at their size and are not blank, and the page holds at
// 375 px and 1280 px (its figures table may scroll inside its own box,
// the page not).
func checkDrill(ctx context.Context, t *testing.T, b *browser, f *fleet, art string) {
	t.Helper()
	// The fault the test injected goes, and the primary comes back
	// through probation during the drill's baseline (or not: the
	// figures do not matter here, the pages do).
	f.vigilctl("inject", "primary", "none")
	exec.Command(filepath.Join(f.bin, "vigilctl"), "clear", "primary").Run() //nolint:errcheck // already cleared is fine
	cmd := exec.Command(filepath.Join(f.bin, "vigil-fleet"), "drill", "run", "primary-errors", "--vehicles", "demo-1",
		"--key", f.key+".key", "--broker", f.broker.URL(), "--sink", f.sink, "--timeout", "90s")
	out, err := cmd.CombinedOutput()
	t.Logf("vigil-fleet drill run primary-errors (%v):\n%s", err, out)
	var d Drill
	waitFor(t, 10*time.Second, "demo-1's drill in the console's JSON", func() bool {
		v, _ := f.vehicle("demo-1")
		if len(v.Drills) > 0 {
			d = v.Drills[0]
		}
		return d.Report != ""
	})
	b.viewport(1280, 900)
	b.open(ctx, f.console+"drills/")
	var runLink string
	b.eval(`(() => { const a = document.querySelector('tr[data-vehicle="demo-1"] a[href^="/drills/"]'); return a ? a.getAttribute("href") : ""; })()`, &runLink)
	if runLink != d.Report {
		t.Errorf("the fleet drills page links demo-1's report at %q, want %q", runLink, d.Report)
	}
	b.open(ctx, f.console+"vehicles/demo-1")
	var href string
	b.eval(`(() => { const a = document.querySelector('#drills a[href^="/drills/"]'); return a ? a.getAttribute("href") : ""; })()`, &href)
	if href != d.Report {
		t.Fatalf("the vehicle page links the drill report at %q, want %q", href, d.Report)
	}
	for _, w := range []struct {
		name          string
		width, height int
	}{{"phone", 375, 812}, {"desktop", 1280, 900}} {
		b.viewport(w.width, w.height)
		b.open(ctx, f.console+strings.TrimPrefix(href, "/"))
		var imgs []struct {
			Src                         string
			Complete                    bool
			NaturalWidth, NaturalHeight int
			Visible                     int
		}
		b.eval(`Array.from(document.images).map(i => ({src: i.getAttribute("src"), complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, visible: Math.round(i.getBoundingClientRect().width)}))`, &imgs)
		if len(imgs) != 3 {
			t.Errorf("the drill report page at %d px has %d images, want 3", w.width, len(imgs))
		}
		for _, im := range imgs {
			if !im.Complete || im.NaturalWidth != 1000 || im.NaturalHeight != 360 || im.Visible < 300 || im.Visible > w.width {
				t.Errorf("at %d px, image %s: %+v, want loaded at 1000x360 and shown within the page", w.width, im.Src, im)
			}
		}
		var o overflowResult
		b.eval(overflowOutsideScroll, &o)
		if o.Viewport != w.width || o.Over > 0.5 {
			t.Errorf("drill report page at %d px: %s", w.width, o)
		}
		shot := filepath.Join(art, fmt.Sprintf("drill-%s-%d.png", w.name, w.width))
		b.screenshot(shot)
		t.Logf("screenshot %s", shot)
		if w.width == 1280 {
			for _, im := range imgs {
				checkPlot(t, f.console+strings.TrimPrefix(im.Src, "/"))
			}
		}
	}
}

// checkPlot fetches a plot as the browser did and checks it is not
// blank: a tenth of its pixels at least are not white.
func checkPlot(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	img, err := png.Decode(resp.Body)
	if err != nil {
		t.Errorf("%s: %v", url, err)
		return
	}
	b, ink := img.Bounds(), 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, _ := img.At(x, y).RGBA(); r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				ink++
			}
		}
	}
	if share := float64(ink) / float64(b.Dx()*b.Dy()); share < 0.1 {
		t.Errorf("%s: %.1f%% of its pixels are not white: blank", url, share*100)
	}
}

// overflowOutsideScroll is overflow that leaves out what lies inside a
// box that scrolls by itself (the drill report's figures table): the page
// must not scroll sideways, the box may.
const overflowOutsideScroll = `(() => {
  const vw = document.documentElement.clientWidth;
  let worst = "", over = document.documentElement.scrollWidth - vw;
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest(".scroll") && !el.classList.contains("scroll")) continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right - vw > 0.5 && r.right - vw >= over) { over = r.right - vw; worst = el.tagName + (el.id ? "#" + el.id : "") + "." + el.className; }
  }
  return {viewport: vw, over: over, worst: worst};
})()`
