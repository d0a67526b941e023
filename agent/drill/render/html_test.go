package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"image/png"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// parsePage renders the report's page and parses it as a browser would.
func parsePage(t *testing.T, out string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	return doc
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// textOf is the page's text as a reader sees it (entities decoded).
func textOf(doc *html.Node) string {
	var b strings.Builder
	walk(doc, func(n *html.Node) {
		if n.Type == html.TextNode && (n.Parent == nil || n.Parent.Data != "style") {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
	})
	return strings.Join(strings.Fields(b.String()), " ")
}

func TestHTMLPage(t *testing.T) {
	r := sampleReport(450)
	var buf bytes.Buffer
	if err := HTML(&buf, r, Options{}); err != nil {
		t.Fatal(err)
	}
	doc := parsePage(t, buf.String())
	var imgs, scripts int
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "script":
			scripts++
		case "img":
			imgs++
			src := attr(n, "src")
			const prefix = "data:image/png;base64,"
			if !strings.HasPrefix(src, prefix) {
				t.Errorf("img src %.40q is not an inline PNG", src)
				return
			}
			b, err := base64.StdEncoding.DecodeString(src[len(prefix):])
			if err != nil {
				t.Errorf("img: %v", err)
				return
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Errorf("img: %v", err)
			} else if img.Bounds().Dx() != 1000 {
				t.Errorf("img width %d", img.Bounds().Dx())
			}
			if attr(n, "alt") == "" {
				t.Error("img without alt text")
			}
		}
	})
	if imgs != 3 || scripts != 0 {
		t.Errorf("%d images and %d scripts, want 3 and none", imgs, scripts)
	}
	txt := textOf(doc)
	for _, want := range []string{
		"Drill primary-hang on av-0042", "FAIL", "vigild 0.19.0", "2026-12-06 03:00:00.000 UTC",
		"fault: failover 41 ms > max 33 ms", "fault: 2 deadlines missed > max 0", // the failures
		"failover (RTO) — 41.0 ms — 41.0 ms", // not measured in the baseline, 41 in the fault and in total
		"2 (deadline 2)", "back to primary — — 300 ms 300 ms", "98.667 %", "unsynced max (RPO) 310",
		"detection ≤ 100ms", "missed deadlines ≤ 0", "hang primary", "2–7 s",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	if strings.Contains(txt, "PASS") || strings.Contains(txt, "aborted") {
		t.Error("a failed, finished run's page says PASS or aborted")
	}
	if !strings.Contains(buf.String(), `name="viewport"`) {
		t.Error("no viewport meta: unreadable on a phone")
	}
}

func TestHTMLPassAndAborted(t *testing.T) {
	r := sampleReport(100)
	r.Passed, r.Failures = true, nil
	for i := range r.Phases {
		r.Phases[i].Passed, r.Phases[i].Failures = true, nil
	}
	var buf bytes.Buffer
	if err := HTML(&buf, r, Options{}); err != nil {
		t.Fatal(err)
	}
	if txt := textOf(parsePage(t, buf.String())); !strings.Contains(txt, "PASS") || strings.Contains(txt, "FAIL") {
		t.Errorf("passed run: page text %q", txt[:200])
	}
	r.Aborted = "the vehicle moved"
	buf.Reset()
	if err := HTML(&buf, r, Options{}); err != nil {
		t.Fatal(err)
	}
	if txt := textOf(parsePage(t, buf.String())); !strings.Contains(txt, "FAIL aborted: the vehicle moved") {
		t.Errorf("aborted run: page text %q", txt[:300])
	}
}

// TestHTMLEscapes: names and reasons come from files and vehicles; none
// may become markup.
func TestHTMLEscapes(t *testing.T) {
	r := sampleReport(50)
	r.Name = `<script>alert("name")</script>`
	r.Vehicle = `av"><img src=x onerror=alert(1)>`
	r.Failures = []string{"<b>bold</b>"}
	r.Phases[1].Name = "<i>phase</i>"
	r.Aborted = "</div><script>x()</script>"
	var buf bytes.Buffer
	if err := HTML(&buf, r, Options{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, bad := range []string{"<script", "<b>", "<i>", "<img src=x"} {
		if strings.Contains(out, bad) {
			t.Errorf("page holds %q unescaped", bad)
		}
	}
	doc := parsePage(t, out)
	imgs := 0
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "b" || n.Data == "i") {
			t.Errorf("a <%s> element made it into the page", n.Data)
		}
		if n.Type == html.ElementNode && n.Data == "img" {
			imgs++
			if attr(n, "onerror") != "" {
				t.Error("an img with onerror made it into the page")
			}
		}
	})
	if imgs != 3 {
		t.Errorf("%d images, want 3 (an injected one?)", imgs)
	}
	if txt := textOf(doc); !strings.Contains(txt, `Drill <script>alert("name")</script> on av"><img`) {
		t.Errorf("escaped name not shown as text: %q", txt[:200])
	}
}

// TestPageWithURLs: a server's page links its images and a way back,
// and StyleSource allows exactly the style sheet the page holds.
func TestPageWithURLs(t *testing.T) {
	r := sampleReport(60)
	imgs, err := PNGs(r, Options{Width: 600, Height: 240})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = PageWith(&buf, r, imgs, PageOptions{
		ImageURL: func(im Image) string { return "/drills/av-0042/x/" + im.Name },
		Back:     "/vehicles/av-0042", BackText: "av-0042", Icon: "/static/favicon.svg",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "data:image") {
		t.Error("page inlines images it was told to link")
	}
	doc := parsePage(t, buf.String())
	var srcs []string
	var back, css string
	walk(doc, func(n *html.Node) {
		switch {
		case n.Type == html.ElementNode && n.Data == "img":
			srcs = append(srcs, attr(n, "src"))
			if attr(n, "width") != "600" || attr(n, "height") != "240" {
				t.Errorf("img %s: width %q height %q, want 600 and 240", attr(n, "src"), attr(n, "width"), attr(n, "height"))
			}
		case n.Type == html.ElementNode && n.Data == "a" && back == "":
			back = attr(n, "href")
		case n.Type == html.TextNode && n.Parent != nil && n.Parent.Data == "style":
			css = n.Data
		}
	})
	want := []string{"/drills/av-0042/x/latency.png", "/drills/av-0042/x/ladder.png", "/drills/av-0042/x/backlog.png"}
	if strings.Join(srcs, " ") != strings.Join(want, " ") {
		t.Errorf("img srcs %q, want %q", srcs, want)
	}
	if !strings.Contains(buf.String(), `<link rel="icon" href="/static/favicon.svg">`) {
		t.Error("no icon link")
	}
	if back != "/vehicles/av-0042" {
		t.Errorf("first link %q, want the way back", back)
	}
	sum := sha256.Sum256([]byte(css))
	if got := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; got != StyleSource() {
		t.Errorf("StyleSource %s, but the page's style hashes to %s", StyleSource(), got)
	}
}
