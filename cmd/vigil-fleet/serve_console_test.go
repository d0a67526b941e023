package main

import (
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/drill"
	"github.com/vigil-av/vigil/cmd/vigil-fleet/console"
	"github.com/vigil-av/vigil/sync/drillstore"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

// TestServeConsoleRefusals: the console's flags are checked before
// anything connects, each refusal naming the flag.
func TestServeConsoleRefusals(t *testing.T) {
	store := t.TempDir()
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("0123456789abcdef0123"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--console-addr", "0.0.0.0:8480"}, "--console-addr 0.0.0.0:8480 is not a loopback address"},
		{[]string{"--console-addr", ":8480", "--console-token-file", token}, "--console-tls-cert"},
		{[]string{"--console-tls-cert", "cert.pem"}, "--console-tls-key"},
		{[]string{"--console-token-file", token}, "chmod 600"},
		{[]string{"--console-refresh", "-1s"}, "--console-refresh"},
		{[]string{"--sink", filepath.Join(store, "missing")}, "--sink"},
		{[]string{"--store-dir", filepath.Join(store, "missing")}, "--store-dir"},
		{[]string{"--rollouts-dir", filepath.Join(store, "missing")}, "--rollouts-dir"},
		{[]string{"--drills", filepath.Join(store, "missing")}, "--drills"},
	} {
		args := append([]string{"serve", "--bundles", store, "--broker", "tcp://127.0.0.1:1"}, c.args...)
		_, _, err := fleet(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %q", c.args, err, c.want)
		}
	}
}

// TestServeConsole: serve runs the console beside the bundle server; it
// lists a vehicle whose retained status and heartbeat are on the broker,
// and closes with serve.
func TestServeConsole(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	c := broker.Client(t, "veh-c", nil)
	if err := mqtttest.Publish(c, "vigil/v1/veh-c/status", []byte("offline"), true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--bundles", t.TempDir(), "--broker", broker.URL(), "--console-addr", "127.0.0.1:0",
			"--sink", filepath.Join(t.TempDir(), "sink-not-yet"), "--progress", "0"}, &out, &errb)
	}()
	// --sink must exist: the refusal comes at once.
	if err := <-done; err == nil || !strings.Contains(err.Error(), "--sink") {
		t.Fatalf("serve with a missing --sink: %v", err)
	}
	// veh-c's drill report, in the drill store the console reads.
	drills := t.TempDir()
	ds, err := drillstore.Open(drills)
	if err != nil {
		t.Fatal(err)
	}
	rep := &drill.Report{Version: drill.ReportVersion, ID: "20261206T030000Z-primary-hang", Name: "primary-hang", Vehicle: "veh-c",
		Started: time.Now().Add(-time.Minute), Ended: time.Now(), Passed: true,
		Series: drill.Series{Requests: []drill.RequestSample{{TMS: 5, LatencyMS: 7, ServedBy: "primary", Status: "ok"}}}}
	if err := ds.SaveReport("veh-c", rep); err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- run(ctx, []string{"serve", "--bundles", t.TempDir(), "--broker", broker.URL(), "--console-addr", "127.0.0.1:0",
			"--drills", drills, "--progress", "0"}, &out, &errb)
	}()
	re := regexp.MustCompile(`"url": "(http://127\.0\.0\.1:\d+/)"`)
	var url string
	eventually(t, 20*time.Second, "the console's address in serve's log", func() bool {
		m := re.FindStringSubmatch(errb.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	eventually(t, 10*time.Second, "veh-c listed offline", func() bool {
		resp, err := http.Get(url + "api/vehicles")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var f console.Fleet
		if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
			t.Fatal(err)
		}
		return len(f.Vehicles) == 1 && f.Vehicles[0].ID == "veh-c" && f.Vehicles[0].State == "offline" &&
			len(f.Vehicles[0].Drills) == 1 && f.Vehicles[0].Drills[0].Report == "/drills/veh-c/"+rep.ID+"/"
	})
	resp, err := http.Get(url + "drills/veh-c/" + rep.ID + "/latency.png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || img.Bounds().Dx() != 1000 {
		t.Errorf("veh-c's drill plot: %d, %v", resp.StatusCode, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, errb.String())
	}
	if _, err := http.Get(url); err == nil {
		t.Error("the console still answers after serve ended")
	}
}
