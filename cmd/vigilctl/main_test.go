package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func ctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

func TestDaemonNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, cmd := range [][]string{{"status"}, {"infer"}, {"policy", "warm"}, {"failover", "primary"}} {
		_, err := ctl(t, append([]string{"--socket", sock}, cmd...)...)
		if err == nil || !strings.Contains(err.Error(), "not running") || !strings.Contains(err.Error(), sock) {
			t.Errorf("%v: %v, want 'not running' naming the socket", cmd, err)
		}
	}
}

func TestArgumentErrors(t *testing.T) {
	cases := map[string][]string{
		"unknown command":       {"reboot"},
		"no command":            {},
		"want primary, shadow":  {"failover", "gpu"},
		"want hot, warm":        {"policy", "lukewarm"},
		"want parked":           {"vehicle", "flying"},
		"want debug":            {"log-level", "loud"},
		"want exactly one":      {"clear"},
		"a backend and a fault": {"inject", "primary"},
		"--shape":               {"infer", "--shape", "1,x"},
		"at least 100ms":        {"watch", "--interval", "1ms"},
	}
	for want, args := range cases {
		_, err := ctl(t, append([]string{"--socket", "/nonexistent/v.sock"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error containing %q", args, err, want)
		}
	}
	out, err := ctl(t, "help")
	if err != nil || !strings.Contains(out, "inject") || !strings.Contains(out, "log-level") {
		t.Errorf("help: %v\n%s", err, out)
	}
}
