package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/sink"
)

// The test binary is the sync suite's cloud side when started with
// syncCloudEnv set, as vigil-bench's main makes vigil-bench: the suite
// starts os.Executable, which here is this binary.
func init() {
	if broker, ok := os.LookupEnv(syncCloudEnv); ok {
		os.Exit(syncCloudMain(broker, os.Stdin, os.Stdout, os.Stderr))
	}
}

// needMosquitto skips the test without the broker, unless
// VIGIL_REQUIRE_DEPS=1, as sync/mqtttest does.
func needMosquitto(t *testing.T) {
	t.Helper()
	if _, err := findMosquitto(""); err != nil {
		if os.Getenv("VIGIL_REQUIRE_DEPS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestSyncSuite runs a short sync suite over the default emulated uplink
// (with one broker restart) and over plain loopback (with none), and
// checks the RESULT line, which says which link it measured and ends
// with the CPU figures, that every round's sink held the backlog once,
// and that the cloud side's process is gone once the suite returns.
func TestSyncSuite(t *testing.T) {
	needMosquitto(t)
	for _, c := range []struct {
		name      string
		flags     []string
		mbps, rtt string
	}{
		{"default uplink", []string{"--restarts", "1"}, "20", "40"},
		{"loopback", []string{"--uplink", "0", "--restarts", "0"}, "0", "0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"sync", "--records", "3000", "--rounds", "2", "--live-rate", "200", "--dir", t.TempDir()}, c.flags...)
			if err := run(context.Background(), args, &out, &errb); err != nil {
				t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			last := lines[len(lines)-1]
			re := regexp.MustCompile(`^RESULT suite=sync records=([0-9]+) drain_records_per_s=([0-9]+) ratio_vs_raw=([0-9]+\.[0-9]{3}) live_p99_ms_during_drain=([0-9]+\.[0-9]) (?:restart_to_live_ms=([0-9]+) )?uplink_mbps=([0-9.]+) uplink_rtt_ms=([0-9]+) cpu_us_per_record=([0-9]+\.[0-9]{3}) raw_cpu_us_per_record=([0-9]+\.[0-9]{3}) cpu_ratio_vs_raw=([0-9]+\.[0-9]{2})$`)
			m := re.FindStringSubmatch(last)
			if m == nil {
				t.Fatalf("last line %q does not match %s\n%s", last, re, out.String())
			}
			if m[1] != "3000" {
				t.Errorf("records=%s, want 3000", m[1])
			}
			for i, name := range []string{"drain_records_per_s", "ratio_vs_raw", "live_p99_ms_during_drain"} {
				v, err := strconv.ParseFloat(m[i+2], 64)
				if err != nil || v < 0 || (i < 2 && v == 0) {
					t.Errorf("%s=%s: want a positive number", name, m[i+2])
				}
			}
			if m[6] != c.mbps || m[7] != c.rtt {
				t.Errorf("uplink_mbps=%s uplink_rtt_ms=%s, want %s and %s", m[6], m[7], c.mbps, c.rtt)
			}
			// The CPU figures: the bench process did work in both spans,
			// and the ratio is the rounds' (so near, not equal to, the
			// medians' quotient).
			for i, name := range []string{"cpu_us_per_record", "raw_cpu_us_per_record", "cpu_ratio_vs_raw"} {
				if v, err := strconv.ParseFloat(m[i+8], 64); err != nil || v <= 0 {
					t.Errorf("%s=%s: want a positive number", name, m[i+8])
				}
			}
			if n := len(regexp.MustCompile(`(?m)^round [12] cpu: raw publish [0-9.]+[µm]?s, [0-9.]+ µs/record; raw read\+pack\+publish .* uploader [0-9.]+[µm]?s, [0-9.]+ µs/record; ratio [0-9.]+ `).FindAllString(out.String(), -1)); n != 2 {
				t.Errorf("%d round cpu lines, want 2\n%s", n, out.String())
			}
			checkCloudGone(t, out.String())
			// The restart: timed, and its sink checked.
			restarts := len(regexp.MustCompile(`(?m)^restart [0-9]+: `).FindAllString(out.String(), -1))
			if c.mbps != "0" && (m[5] == "" || restarts != 1) || c.mbps == "0" && (m[5] != "" || restarts != 0) {
				t.Errorf("restart_to_live_ms=%q and %d restart lines, with %v\n%s", m[5], restarts, c.flags, out.String())
			}
			// Each round drains the 3000 summaries and the store's opening
			// notice, and its sink holds them (and the live records) once.
			if n := strings.Count(out.String(), ": 3001 records in "); n != 2 {
				t.Errorf("%d rounds report a backlog of 3001 records, want 2\n%s", n, out.String())
			}
			if n := strings.Count(out.String(), "records, each once"); n != 2+restarts {
				t.Errorf("%d rounds checked the sink, want %d\n%s", n, 2+restarts, out.String())
			}
			if !regexp.MustCompile(`(?m)^totals: batches [0-9]+ \([0-9.]+ MB packed\) of backlog, [0-9]+ sent by the uploader \(backlog and live\), resends [0-9]+, duplicates [0-9]+`).MatchString(out.String()) {
				t.Errorf("no totals line with batches, bytes, resends and duplicates:\n%s", out.String())
			}
		})
	}
}

func TestSyncFlagErrors(t *testing.T) {
	cases := map[string][]string{
		"--records":           {"sync", "--records", "0"},
		"--rounds":            {"sync", "--rounds", "0"},
		"--window":            {"sync", "--window", "-1"},
		"--max-payload":       {"sync", "--max-payload", "-1"},
		"--live-rate":         {"sync", "--live-rate", "0"},
		"--live-stream":       {"sync", "--live-stream", "nope"},
		"--timeout":           {"sync", "--timeout", "0s"},
		"--restarts":          {"sync", "--restarts", "-1"},
		"unexpected argument": {"sync", "extra"},
		"--mosquitto":         {"sync", "--mosquitto", "/nonexistent/mosquitto"},
	}
	for want, args := range cases {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error mentioning %q", args, err, want)
		}
	}
}

// TestCheckSinkCatchesDuplicates feeds a sink directly (no broker) and
// checks that the suite's verification passes on a clean sink and fails
// on a record stored twice, which the sink's own reads would hide.
func TestCheckSinkCatchesDuplicates(t *testing.T) {
	const vehicle = "veh-check"
	dir := t.TempDir()
	store, targets, err := fillStore(context.Background(), filepath.Join(dir, "store"), 50)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	sinkDir := filepath.Join(dir, "sink")
	sk, err := sink.Open(sinkDir, sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	next := packingSource(store, batch.Packer{Vehicle: vehicle, Store: store.StoreID(), Boot: store.Boot(), Compression: batch.Flate, MaxPayload: 1024})
	for {
		b, err := next()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			break
		}
		if _, err := sk.Ingest(vehicle, b); err != nil {
			t.Fatal(err)
		}
	}
	for name, last := range targets {
		if err := store.Ack(name, last); err != nil {
			t.Fatal(err)
		}
	}
	n, err := checkSink(sk, sinkDir, vehicle, store, storage.StreamInference, nil)
	if err != nil || n != 51 {
		t.Fatalf("clean sink: %d records checked, %v; want 51, nil", n, err)
	}

	recs, err := store.Read(storage.StreamInference, 1, 2, 1<<20)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Read: %d records, %v", len(recs), err)
	}
	dup, err := batch.Encode(batch.Header{Vehicle: vehicle, Store: store.StoreID(), Stream: storage.StreamInference, Boot: store.Boot(), Compression: batch.Flate}, batch.FromStorage(recs))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%020d-%020d.batch", recs[0].Seq, recs[1].Seq)
	if err := os.WriteFile(filepath.Join(sinkDir, vehicle, fmt.Sprintf("%016x", store.StoreID()), storage.StreamInference, name), dup, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkSink(sk, sinkDir, vehicle, store, storage.StreamInference, nil); err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Fatalf("sink with seq 2 and 3 stored twice: %v, want an error saying so", err)
	}
}
