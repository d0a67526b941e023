package render

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-av/vigil/agent/drill"
)

// TestWriteSamples writes sample pictures and a page to $RENDER_OUT, for
// a person to look at; without it set there is nothing to do.
func TestWriteSamples(t *testing.T) {
	dir := os.Getenv("RENDER_OUT")
	if dir == "" {
		t.Skip("RENDER_OUT not set: no samples to write")
	}
	huge := sampleReport(450)
	huge.Series.Requests[100].LatencyMS = 1e6
	huge.Series.Requests[101].LatencyMS = math.Inf(1)
	for name, r := range map[string]*drill.Report{"sample": sampleReport(450), "big": sampleReport(20000), "huge": huge, "empty": {}} {
		imgs, err := PNGs(r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range imgs {
			if err := os.WriteFile(filepath.Join(dir, name+"-"+im.Name), im.PNG, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f, err := os.Create(filepath.Join(dir, name+".html"))
		if err != nil {
			t.Fatal(err)
		}
		if err := Page(f, r, imgs); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}
