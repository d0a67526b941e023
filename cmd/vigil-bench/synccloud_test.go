package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cloudLineRE finds the cloud side's pid in the suite's output.
var cloudLineRE = regexp.MustCompile(`(?m)^cloud side: pid ([0-9]+) \(.*\); CPU times are this process's \(pid ([0-9]+)\)$`)

// cloudPid is the cloud side's pid the suite printed, failing the test
// without one, or one that is this process.
func cloudPid(t *testing.T, out string) int {
	t.Helper()
	m := cloudLineRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no cloud side line in:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	if self, _ := strconv.Atoi(m[2]); pid == self {
		t.Fatalf("the cloud side is the bench process itself (pid %d)", pid)
	}
	return pid
}

// checkCloudGone checks that the cloud side's process the suite printed
// has been reaped: signal 0 to its pid finds no process (a zombie, one
// ended but not waited for, would still be found).
func checkCloudGone(t *testing.T, out string) {
	t.Helper()
	pid := cloudPid(t, out)
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the cloud side (pid %d) is still there after the suite: kill(pid, 0) = %v", pid, err)
	}
}

// watchWriter collects the suite's output and calls onCloud, once, with
// the cloud side's pid as soon as the suite prints it, from within the
// suite's write.
type watchWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	onCloud func(pid int)
	seen    bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := cloudLineRE.FindSubmatch(w.buf.Bytes()); m != nil && !w.seen {
		w.seen = true
		pid, _ := strconv.Atoi(string(m[1]))
		w.onCloud(pid)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestSyncCloudReapedOnError ends the suite early while its cloud side
// runs, by cancelling its context and by killing the cloud side, and
// checks that the suite returns the error and leaves no process behind.
func TestSyncCloudReapedOnError(t *testing.T) {
	needMosquitto(t)
	args := func(t *testing.T) []string {
		return []string{"sync", "--records", "3000", "--rounds", "2", "--restarts", "0", "--dir", t.TempDir()}
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := &watchWriter{onCloud: func(int) { cancel() }}
		var errb bytes.Buffer
		err := run(ctx, args(t), out, &errb)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("suite cancelled once its cloud side started: %v, want context.Canceled\n%s%s", err, out, errb.String())
		}
		checkCloudGone(t, out.String())
	})
	t.Run("cloud side killed", func(t *testing.T) {
		out := &watchWriter{onCloud: func(pid int) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill the cloud side: %v", err)
			}
		}}
		var errb bytes.Buffer
		err := run(context.Background(), args(t), out, &errb)
		if err == nil || !strings.Contains(err.Error(), "cloud side") {
			t.Fatalf("suite whose cloud side was killed: %v, want an error naming the cloud side\n%s%s", err, out, errb.String())
		}
		checkCloudGone(t, out.String())
	})
}

// TestCloudProc starts the cloud side directly: it refuses requests it
// cannot serve, naming them, and serves on after each refusal; it ends
// on its own once its stdin closes; and a closed one refuses calls.
func TestCloudProc(t *testing.T) {
	// No broker is needed for these requests: none connects.
	c, err := startCloud("tcp://127.0.0.1:1", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	pid := c.pid()
	defer c.close() //nolint:errcheck // checked below
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  cloudRequest
		want string
	}{
		{cloudRequest{Op: "nope"}, `cloud side, nope: unknown request "nope"`},
		{cloudRequest{Op: opExpect, Count: 1, Timeout: time.Second}, "cloud side, expect: expect: no subscriber"},
		{cloudRequest{Op: opIngestStop}, "cloud side, ingest-stop: no ingester is running"},
		{cloudRequest{Op: opAcks}, "cloud side, acks: no ack watcher"},
		{cloudRequest{Op: opIngest, SinkDir: filepath.Join(file, "sink"), ClientID: "x", Group: "g"}, "cloud side, ingest: sink: create " + filepath.Join(file, "sink")},
	} {
		if _, err := c.call(ctx, tc.req, 10*time.Second); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.req.Op, err, tc.want)
		}
	}
	r, err := c.call(ctx, cloudRequest{Op: opUplink, Target: "127.0.0.1:1", Mbps: 1}, 10*time.Second)
	if err != nil || !strings.HasPrefix(r.URL, "tcp://127.0.0.1:") {
		t.Errorf("uplink after the refusals: %+v, %v", r, err)
	}
	if err := c.close(); err != nil {
		t.Errorf("close: %v, want the process to end on its own once its stdin closed", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the cloud side (pid %d) is still there after close: kill(pid, 0) = %v", pid, err)
	}
	if _, err := c.call(ctx, cloudRequest{Op: opUplink}, time.Second); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("call after close: %v, want an error saying it is closed", err)
	}
}

// TestAckLatencies times live records to the earliest ack covering them,
// from the wall-clock times the cloud side notes, and counts those no
// ack covers.
func TestAckLatencies(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) int64 { return t0.Add(time.Duration(ms) * time.Millisecond).UnixNano() }
	acks := []ackAt{{First: 1, Last: 10, At: at(50)}, {First: 5, Last: 12, At: at(30)}, {First: 11, Last: 12, At: at(80)}}
	recs := []liveRecord{{seq: 2, at: t0}, {seq: 6, at: t0.Add(10 * time.Millisecond)}, {seq: 12, at: t0}, {seq: 13, at: t0}}
	lat, missed := ackLatencies(acks, recs)
	want := []time.Duration{50 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond}
	if !slices.Equal(lat, want) || missed != 1 {
		t.Errorf("latencies %v, %d missed; want %v, 1 (seq 13 has no ack)", lat, missed, want)
	}
}
