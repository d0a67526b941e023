package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlagErrors(t *testing.T) {
	cases := map[string][]string{
		"--rate":              {"--rate", "0"},
		"--deadline":          {"--deadline", "0s"},
		"fault-at < clear-at": {"--fault-at", "20s", "--clear-at", "10s"},
		"--fault-backend":     {"--fault-backend", "gpu"},
		"not running":         {"--socket", filepath.Join(t.TempDir(), "none.sock")},
	}
	for want, args := range cases {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want %q", args, err, want)
		}
	}
}
