package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestCheckpointSuite: a small run over loopback builds the chain under
// writes, uploads it through Mosquitto into the fleet's store, exports and
// restores it, and ends with a RESULT line saying every record came back.
func TestCheckpointSuite(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"checkpoint", "--records", "8000", "--rounds", "1", "--uplink=false", "--dir", t.TempDir()}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	re := regexp.MustCompile(`^RESULT suite=checkpoint records=8000 backup_mb_per_s=[0-9.]+ ratio_vs_raw=[0-9.]+ upload_ratio_vs_raw=[0-9.]+ restore_s=[0-9.]+ restored=8000 lost=0 verify=ok$`)
	if !re.MatchString(last) {
		t.Errorf("last line %q does not match %s\n%s", last, re, out.String())
	}
	if !strings.Contains(out.String(), "5 of 5 checkpoints complete and verified") {
		t.Errorf("the fleet's copy is not whole:\n%s", out.String())
	}
}

func TestCheckpointFlagErrors(t *testing.T) {
	for want, args := range map[string][]string{
		"--records":           {"checkpoint", "--records", "10"},
		"unexpected argument": {"checkpoint", "extra"},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error mentioning %q", args, err, want)
		}
	}
}
