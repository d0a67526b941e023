package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestRunDispatch(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, s := range suites {
		if !strings.Contains(out.String(), s.name) {
			t.Errorf("help does not list suite %s", s.name)
		}
	}
	if err := run(context.Background(), nil, &out, &errb); err == nil {
		t.Error("no suite accepted")
	}
	if err := run(context.Background(), []string{"nope"}, &out, &errb); err == nil || !strings.Contains(err.Error(), `unknown suite "nope"`) {
		t.Errorf("unknown suite: %v", err)
	}
}

func TestSuiteFlagErrors(t *testing.T) {
	cases := map[string][]string{
		"need at least 10":    {"inference", "--runs", "5"},
		"--provider":          {"inference", "--provider", "gpu"},
		"--rate":              {"failover", "--rate", "0"},
		"--policies":          {"failover", "--policies", "hot,lukewarm"},
		"unexpected argument": {"failover", "extra"},
		"--gpu-provider":      {"failover", "--gpu-provider", "cuda:x"},
		"--deadline":          {"failover", "--deadline", "-1ms"},
		"--isolation":         {"failover", "--isolation", "container"},
		"--worker-memory-mb":  {"failover", "--worker-memory-mb", "8"},
		"--payload":           {"storage", "--payload", "text"},
	}
	for want, args := range cases {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error mentioning %q", args, err, want)
		}
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"failover", "--help"}, &out, &errb); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errb.String(), "detection time") {
		t.Errorf("failover --help: %v\n%s", err, errb.String())
	}
}
