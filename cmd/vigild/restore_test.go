package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint"
)

// chainOf takes a full and an incremental checkpoint of a real store,
// created an hour apart, and returns the chain directory, the manifests
// and the store's id.
func chainOf(t *testing.T) (string, []*checkpoint.Manifest, uint64) {
	t.Helper()
	root := t.TempDir()
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(root, "db")
	s, err := storage.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	chain := filepath.Join(root, "chain")
	created := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var ms []*checkpoint.Manifest
	for i, k := range []checkpoint.Kind{checkpoint.Full, checkpoint.Incremental} {
		var last uint64
		for j := range 200 {
			last, _ = s.Stream(storage.StreamHealth).Append([]byte(fmt.Sprintf("reading %d %d", i, j)))
		}
		if err := s.Stream(storage.StreamHealth).WaitDurable(context.Background(), last); err != nil {
			t.Fatal(err)
		}
		m, err := checkpoint.Take(context.Background(), s, checkpoint.Options{Dir: chain, Kind: k, Vehicle: "car-1",
			Created: created.Add(time.Duration(i) * time.Hour), DaemonVersion: "test"})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return chain, ms, s.StoreID()
}

func TestRestore(t *testing.T) {
	chain, ms, parent := chainOf(t)
	data := t.TempDir()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"restore", "--from", chain, "--data-dir", data}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"restored checkpoint " + ms[1].ID + " of vehicle car-1", ms[0].ID + " (", "health", "400 records, last seq 400",
		fmt.Sprintf("parent store %016x", parent), "restore took"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// vigild's store directory holds the new incarnation.
	cfg := storage.DefaultConfig()
	cfg.Dir = filepath.Join(data, "telemetry")
	s, err := storage.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := s.Lineage()
	if !ok || l.Parent != parent || l.Checkpoint != ms[1].ID || l.ParentLast[storage.StreamHealth] != 400 || s.StoreID() == parent ||
		!strings.Contains(out.String(), fmt.Sprintf("new store %016x", s.StoreID())) {
		t.Errorf("restored store %016x, lineage %+v, %v", s.StoreID(), l, ok)
	}
	s.Close(context.Background())

	// Not again over it without --force; with it, the old one moves aside.
	err = run(context.Background(), []string{"restore", "--from", chain, "--data-dir", data}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "telemetry") {
		t.Errorf("over a restored store: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"restore", "--from", chain, "--data-dir", data, "--force", "--at", "2026-12-04T10:30:00Z"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "restored checkpoint "+ms[0].ID) || !strings.Contains(out.String(), "200 records, last seq 200") {
		t.Errorf("--at a time between the two: %s", out.String())
	}
	if _, err := os.Stat(filepath.Join(data, "telemetry.before-restore-"+ms[0].ID)); err != nil {
		t.Errorf("the old store was not moved aside: %v", err)
	}
}

func TestRestoreRefuses(t *testing.T) {
	chain, ms, _ := chainOf(t)
	// A chain with the full missing: a gap.
	gap := filepath.Join(t.TempDir(), "gap")
	if err := os.CopyFS(gap, os.DirFS(chain)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(gap, ms[0].ID), 0o755)
	if err := os.RemoveAll(filepath.Join(gap, ms[0].ID)); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", gap}, ms[1].ID},
		{[]string{"--from", chain, "--at", "000099-full"}, "000099-full"},
		{[]string{"--from", chain, "--at", "2026-12-04T09:00:00Z"}, "no checkpoint"},
		{[]string{"--from", chain, "--config", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
		{[]string{}, "--from is required"},
		{[]string{"--from", chain, "stray"}, "stray"},
	} {
		data := t.TempDir()
		err := run(context.Background(), append([]string{"restore", "--data-dir", data}, c.args...), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
		if ents, _ := os.ReadDir(data); len(ents) != 0 {
			t.Errorf("%v: left %d entries in the data directory", c.args, len(ents))
		}
	}
	// Not empty.
	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, "telemetry"), 0o755)
	os.WriteFile(filepath.Join(data, "telemetry", "keep"), []byte("x"), 0o644)
	if err := run(context.Background(), []string{"restore", "--from", chain, "--data-dir", data}, &out, &errb); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty target: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "telemetry", "keep")); string(b) != "x" {
		t.Error("the non-empty target was touched")
	}
}

func TestRestoreHelp(t *testing.T) {
	var out, errb bytes.Buffer
	run(context.Background(), []string{"restore", "--help"}, &out, &errb)
	if !strings.Contains(errb.String(), "new incarnation") || !strings.Contains(errb.String(), "--at") {
		t.Errorf("restore --help: %s", errb.String())
	}
	errb.Reset()
	run(context.Background(), []string{"--help"}, &out, &errb)
	if !strings.Contains(errb.String(), "vigild restore") {
		t.Errorf("--help does not mention restore: %s", errb.String())
	}
}
