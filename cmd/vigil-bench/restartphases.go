package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// startPhases are the log lines of vigild's start the suite times, in the
// order the daemon usually writes them: the first line of each message
// (and of each backend's "model loaded").
var startPhases = []string{"starting", "storage open", "onnxruntime", "model loaded", "ready", "sync on", "connected", "checkpoints on"}

// phase is one log line's time after the launch of the process.
type phase struct {
	name string
	at   time.Duration
}

// logPhases reads vigild's JSON log at path and returns when each of
// startPhases was first logged, after launched, in the log's order.
func logPhases(path string, launched time.Time) ([]phase, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	want := map[string]bool{}
	for _, p := range startPhases {
		want[p] = true
	}
	seen := map[string]bool{}
	var out []phase
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			TS      string `json:"ts"`
			Msg     string `json:"msg"`
			Backend string `json:"backend"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || !want[line.Msg] {
			continue
		}
		name := line.Msg
		if line.Backend != "" {
			name += " " + line.Backend
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", line.TS)
		if err != nil {
			return nil, fmt.Errorf("%s: time %q: %w", path, line.TS, err)
		}
		out = append(out, phase{name, ts.Sub(launched)})
	}
	return out, sc.Err()
}

// phaseLine prints phases as "name +N ms, …".
func phaseLine(ps []phase) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s +%d", p.name, p.at.Milliseconds())
	}
	return strings.Join(parts, ", ")
}
