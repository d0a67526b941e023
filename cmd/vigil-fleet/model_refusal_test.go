package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/models/bundle"
)

// modelWorld is a directory holding what an operator has: model files,
// keys of both kinds, and signed bundles in both forms.
type modelWorld struct {
	root, files, key, cmdKey, tar, dir, cuda, badContract string
}

func newModelWorld(t *testing.T) *modelWorld {
	t.Helper()
	w := &modelWorld{root: t.TempDir()}
	w.files = modelFiles(t)
	w.key = modelKeygen(t)
	w.cmdKey = keygen(t)
	w.tar = filepath.Join(w.root, "pilotnet-2.tar")
	mustFleet(t, packArgs(w.files, w.tar)...)
	mustFleet(t, "model", "sign", "--key", w.key+".key", w.tar)
	w.dir = filepath.Join(w.root, "pilotnet-2")
	untar(t, w.tar, w.dir)
	w.cuda = filepath.Join(w.root, "pilotnet-3-cuda.tar")
	mustFleet(t, append(packArgs(w.files, w.cuda, "--providers", "cuda"), "--version", "3")...)
	mustFleet(t, "model", "sign", "--key", w.key+".key", w.cuda)
	w.badContract = filepath.Join(w.root, "wide.json")
	if err := os.WriteFile(w.badContract, []byte(`{"inputs":[{"name":"frame","type":"float32","shape":[1,3,66,200]}],
		"outputs":[{"name":"controls","type":"float32","shape":[1,4]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// treeState records every entry under the roots: mode and contents.
func treeState(t *testing.T, roots ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			state := info.Mode().String()
			if info.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				state += fmt.Sprintf(" %x", sha256.Sum256(b))
			}
			out[p] = state
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// modelRefusal is a bad invocation: its arguments, the refusal it must
// wrap (nil: only the text is checked) and what the error must name.
type modelRefusal struct {
	args    []string
	want    error
	mention string
}

// modelRefusals sets up the bad inputs in w and lists the invocations.
func modelRefusals(t *testing.T, w *modelWorld) []modelRefusal {
	newOut := filepath.Join(w.root, "new.tar")
	twoModels := modelFiles(t)
	os.WriteFile(filepath.Join(twoModels, "other.onnx"), []byte("x"), 0o644)
	withLink := modelFiles(t)
	os.Symlink("/etc/hostname", filepath.Join(withLink, "notes", "link"))
	openKey := filepath.Join(w.root, "open.key")
	key, _ := os.ReadFile(w.key + ".key")
	os.WriteFile(openKey, key, 0o644)
	pubAsKey := filepath.Join(w.root, "pub-as.key")
	pubText, _ := os.ReadFile(w.key + ".pub")
	os.WriteFile(pubAsKey, pubText, 0o600)
	damaged := filepath.Join(w.root, "damaged.tar")
	b, _ := os.ReadFile(w.tar)
	os.WriteFile(damaged, bytes.Replace(b, []byte("PilotNet primary\n"), []byte("PilotNet primarY\n"), 1), 0o644)
	notBundle := filepath.Join(w.root, "notes.txt")
	os.WriteFile(notBundle, []byte("hello"), 0o644)
	other := modelKeygen(t)

	pack := func(extra ...string) []string { return packArgs(w.files, newOut, extra...) }
	without := func(args []string, flag string) []string {
		for i, a := range args {
			if a == flag {
				return append(append([]string{}, args[:i]...), args[i+2:]...)
			}
		}
		t.Fatalf("no %s in %q", flag, args)
		return nil
	}
	verify := func(extra ...string) []string {
		return append([]string{"model", "verify", "--trusted", w.key + ".pub"}, extra...)
	}
	return []modelRefusal{
		{without(pack(), "--dir"), nil, "--dir is required"},
		{without(pack(), "--name"), nil, "--name is required"},
		{without(pack(), "--version"), nil, "--version is required"},
		{without(pack(), "--min-vigil"), nil, "--min-vigil is required"},
		{without(pack(), "--out"), nil, "--out is required"},
		{packArgs(w.files, w.tar), nil, w.tar + " exists; refusing to overwrite"},
		{packArgs(filepath.Join(w.root, "none"), newOut), nil, "--dir: stat"},
		{packArgs(w.dir, newOut), nil, "holds a bundle.json"},
		{packArgs(twoModels, newOut), nil, "name the one to load with --model"},
		{pack("--model", "missing.onnx"), nil, "--model missing.onnx is not a file under --dir"},
		{pack("--name", "PilotNet"), bundle.ErrMalformed, "--name: "},
		{pack("--roles", "copilot"), bundle.ErrUnknownRole, "--roles: "},
		{pack("--min-vigil", "1.0"), bundle.ErrMalformed, "--min-vigil: "},
		{pack("--providers", "CUDA"), bundle.ErrMalformed, "--providers: "},
		{pack("--tolerance-abs", "-1"), bundle.ErrMalformed, "--tolerance-abs/--tolerance-rel: "},
		{pack("--valid-for", "-1h"), nil, "--valid-for -1h0m0s: must be positive"},
		{pack("--contract-from", notBundle), nil, "--contract-from: " + notBundle},
		{pack("--contract-from", filepath.Join(w.root, "none.json")), nil, "--contract-from: open"},
		{pack("extra"), nil, "unexpected arguments"},
		{packArgs(withLink, newOut), bundle.ErrBadPath, "notes/link is a symbolic link"},

		{[]string{"model", "sign", w.tar}, nil, "--key is required"},
		{[]string{"model", "sign", "--key", w.cmdKey + ".key", w.tar}, nil, "this is a fleet command key"},
		{[]string{"model", "sign", "--key", openKey, w.tar}, nil, "too open"},
		{[]string{"model", "sign", "--key", pubAsKey, w.tar}, nil, "this is a public key"},
		{[]string{"model", "sign", "--key", w.key + ".key"}, nil, "give the bundle"},
		{[]string{"model", "sign", "--key", w.key + ".key", w.tar, w.dir}, nil, "one bundle at a time"},
		{[]string{"model", "sign", "--key", w.key + ".key", damaged}, bundle.ErrFileMismatch, "notes/README.txt"},
		{[]string{"model", "sign", "--key", w.key + ".key", "--out", w.cuda, w.dir}, nil, w.cuda + " exists"},
		{[]string{"model", "sign", "--key", w.key + ".key", "--valid-for", "-1s", w.tar}, nil, "--valid-for"},
		{[]string{"model", "sign", "--key", w.key + ".key", notBundle}, bundle.ErrMalformed, notBundle},

		{[]string{"model", "inspect"}, nil, "give the bundle"},
		{[]string{"model", "inspect", filepath.Join(w.root, "none.tar")}, nil, "none.tar"},
		{[]string{"model", "inspect", notBundle}, bundle.ErrMalformed, "tar"},

		{[]string{"model", "verify", w.tar}, nil, "--trusted is required"},
		{[]string{"model", "verify", "--trusted", w.cmdKey + ".pub", w.tar}, nil, "this is a fleet command key"},
		{[]string{"model", "verify", "--trusted", filepath.Join(w.root, "none.pub"), w.tar}, nil, "--trusted"},
		{[]string{"model", "verify", "--trusted", other + ".pub", w.tar}, bundle.ErrUnknownKey, "refused"},
		{verify("--floor", "pilotnet", w.tar), nil, `--floor "pilotnet": want name=version`},
		{verify("--floor", "pilotnet=2", w.tar), bundle.ErrBelowFloor, "floor for pilotnet is 2"},
		{verify("--floor", "other=9,pilotnet=3", w.dir), bundle.ErrBelowFloor, "floor for pilotnet is 3"},
		{verify("--contract", "copilot="+w.badContract, w.tar), nil, `unknown role "copilot"`},
		{verify("--contract", "shadow="+w.badContract, w.tar), bundle.ErrIncompatibleContract, "role shadow"},
		{verify("--contract", w.badContract, w.tar), bundle.ErrIncompatibleContract, "[1 4]"},
		{verify("--contract", notBundle, w.tar), nil, "--contract: " + notBundle},
		{verify("--vigil-version", "latest", w.tar), nil, "--vigil-version"},
		{verify("--vigil-version", "0.0.9", w.tar), bundle.ErrVigilTooOld, "0.0.9"},
		{verify("--at", "tomorrow", w.tar), nil, "--at"},
		{verify("--at", "2999-01-01T00:00:00Z", w.tar), bundle.ErrExpired, "expires"},
		{verify("--at", "2000-01-01T00:00:00Z", w.tar), bundle.ErrNotYetValid, "created"},
		{verify(w.cuda), bundle.ErrProviderUnavailable, `"cuda"`},
		{verify("--providers", "cpu,tensorrt", w.cuda), bundle.ErrProviderUnavailable, "[cpu tensorrt]"},
		{verify(damaged), bundle.ErrFileMismatch, "notes/README.txt"},
		{verify(notBundle), bundle.ErrMalformed, notBundle},

		{[]string{"model"}, nil, "model: give a subcommand: keygen, pack, sign, inspect or verify"},
		{[]string{"model", "--json"}, nil, "give a subcommand"},
		{[]string{"model", "publish"}, nil, `unknown command "model publish"`},
	}
}

// TestModelRefusals: each bad invocation of the model commands exits
// non-zero with an error naming the flag, file or check, and changes no
// file.
func TestModelRefusals(t *testing.T) {
	w := newModelWorld(t)
	cases := modelRefusals(t, w)
	for _, c := range cases {
		before := treeState(t, w.root, w.files, filepath.Dir(w.key))
		_, _, err := fleet(t, c.args...)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%q: %v; want %v mentioning %q", c.args[1:], err, c.want, c.mention)
		}
		after := treeState(t, w.root, w.files, filepath.Dir(w.key))
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("%q changed files", c.args[1:])
		}
	}
	// The good bundles still verify: nothing above touched them.
	mustFleet(t, "model", "verify", "--trusted", w.key+".pub", "--providers", "cpu,cuda", w.cuda)
	mustFleet(t, "model", "verify", "--trusted", w.key+".pub", w.dir)
}
