package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// browser is headless Chromium driven over the DevTools protocol on
// --remote-debugging-pipe: the browser reads commands on its fd 3 and
// writes answers and events on its fd 4, each a JSON message ended by a
// NUL byte. No WebSocket, no port, no library.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	toB     *os.File
	stderr  bytes.Buffer
	done    chan struct{}
	session string

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpMessage
	loaded  chan struct{}
	// problems are the page's console errors, uncaught exceptions and
	// error log entries (failed loads, CSP violations).
	problems []string
}

type cdpMessage struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	Result    json.RawMessage `json:"result"`
	Error     *struct{ Message string }
	SessionID string `json:"sessionId"`
}

// chromiumPath finds Debian's chromium.
func chromiumPath() (string, bool) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	cmdR, cmdW, err := os.Pipe() // we write commands, the browser reads (its fd 3)
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe() // the browser writes (its fd 4), we read
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, toB: cmdW, done: make(chan struct{}), waiting: map[int]chan cdpMessage{}, loaded: make(chan struct{}, 8)}
	b.cmd = exec.Command(bin, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "about:blank")
	b.cmd.ExtraFiles = []*os.File{cmdR, evW}
	b.cmd.Stderr = &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	cmdR.Close()
	evW.Close()
	go b.read(evR)
	t.Cleanup(func() {
		b.toB.Close()
		b.cmd.Process.Kill()
		b.cmd.Wait()
		<-b.done
	})
	var created struct{ TargetID string }
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &created)
	var attached struct{ SessionID string }
	b.call("", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	for _, domain := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		b.call(b.session, domain, nil, nil)
	}
	return b
}

func (b *browser) read(r *os.File) {
	defer close(b.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.waiting[m.ID]
			delete(b.waiting, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		b.event(m)
	}
}

// event keeps what the page reports as an error.
func (b *browser) event(m cdpMessage) {
	var p struct {
		Type  string                `json:"type"`
		Args  []struct{ Value any } `json:"args"`
		Entry struct {
			Level, Text, URL string
		} `json:"entry"`
		ExceptionDetails struct {
			Text      string
			Exception struct{ Description string }
		} `json:"exceptionDetails"`
	}
	json.Unmarshal(m.Params, &p) //nolint:errcheck // an event we cannot read is not one we look for
	var problem string
	switch m.Method {
	case "Page.loadEventFired":
		select {
		case b.loaded <- struct{}{}:
		default:
		}
	case "Runtime.consoleAPICalled":
		if p.Type == "error" || p.Type == "assert" {
			problem = fmt.Sprintf("console.%s: %v", p.Type, p.Args)
		}
	case "Runtime.exceptionThrown":
		problem = "uncaught: " + p.ExceptionDetails.Text + " " + p.ExceptionDetails.Exception.Description
	case "Log.entryAdded":
		if p.Entry.Level == "error" {
			problem = fmt.Sprintf("log: %s (%s)", p.Entry.Text, p.Entry.URL)
		}
	}
	if problem != "" {
		b.mu.Lock()
		b.problems = append(b.problems, problem)
		b.mu.Unlock()
	}
}

// call sends a command and waits up to 20 s for its answer.
func (b *browser) call(session, method string, params any, result any) {
	b.t.Helper()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, _ := json.Marshal(msg)
	if _, err := b.toB.Write(append(raw, 0)); err != nil {
		b.t.Fatalf("devtools %s: %v\nchromium: %s", method, err, b.stderr.String())
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			b.t.Fatalf("devtools %s: %s", method, m.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				b.t.Fatalf("devtools %s: %v", method, err)
			}
		}
	case <-b.done:
		b.t.Fatalf("devtools %s: chromium exited: %v\n%s", method, b.cmd.ProcessState, b.stderr.String())
	case <-time.After(20 * time.Second):
		b.t.Fatalf("devtools %s: no answer in 20 s", method)
	}
}

// viewport sets the page's width (and a height), as a phone or a desktop.
func (b *browser) viewport(width, height int) {
	b.call(b.session, "Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height,
		"deviceScaleFactor": 1, "mobile": width < 600}, nil)
}

// open navigates and waits for the load event.
func (b *browser) open(ctx context.Context, url string) {
	b.t.Helper()
	for len(b.loaded) > 0 {
		<-b.loaded
	}
	var nav struct{ ErrorText string }
	b.call(b.session, "Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		b.t.Fatalf("open %s: %s", url, nav.ErrorText)
	}
	select {
	case <-b.loaded:
	case <-ctx.Done():
		b.t.Fatalf("open %s: no load event: %v", url, ctx.Err())
	}
}

// eval runs a JavaScript expression in the page and decodes its value.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	var r struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct{ Text string }
	}
	b.call(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		b.t.Fatalf("eval %s: %s", expr, r.ExceptionDetails.Text)
	}
	if err := json.Unmarshal(r.Result.Value, out); err != nil {
		b.t.Fatalf("eval %s: %v (%s)", expr, err, r.Result.Value)
	}
}

// screenshot saves the whole page as a PNG.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	var r struct{ Data string }
	b.call(b.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || len(png) < 1000 {
		b.t.Fatalf("screenshot %s: %d bytes, %v", path, len(png), err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// pageProblems returns the errors the pages reported so far.
func (b *browser) pageProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// overflow is the script that measures a page's horizontal overflow:
// how far the document and its widest element reach past the viewport.
const overflow = `(() => {
  const vw = document.documentElement.clientWidth;
  let worst = "", over = document.documentElement.scrollWidth - vw;
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right - vw > 0.5 && r.right - vw >= over) { over = r.right - vw; worst = el.tagName + (el.id ? "#" + el.id : "") + "." + el.className; }
  }
  return {viewport: vw, over: over, worst: worst};
})()`

type overflowResult struct {
	Viewport int     `json:"viewport"`
	Over     float64 `json:"over"`
	Worst    string  `json:"worst"`
}

func (o overflowResult) String() string {
	return fmt.Sprintf("%.1f px past a %d px viewport (widest: %s)", o.Over, o.Viewport, strings.TrimSpace(o.Worst))
}
