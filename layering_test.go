package vigil_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The layering of the module, in one table: DESIGN.md's "must not import"
// column and the rules that keep small tools small (STYLE.md, habit 11).
// A rule holds over a package's whole dependency closure, as `go list
// -deps` computes it, not only over its own import lines: a package that
// imports a light package that imports a heavy one links the heavy one.
// Test files are not held to it (tests run the real Badger, broker and
// ONNX Runtime). watchdog/purity_test.go still checks the machine's own
// source (standard library only, no clock, no goroutines).

const module = "github.com/vigil-av/vigil"

// What rules forbid: a module or package, and every package below it.
const (
	onnxruntime = "github.com/yalue/onnxruntime_go"
	badger      = "github.com/dgraph-io/badger"
	paho        = "github.com/eclipse/paho.mqtt.golang"
	zap         = "go.uber.org/zap"
	nvml        = "github.com/NVIDIA/go-nvml"
)

type rule struct {
	// pkgs is a package of the module, relative to it; with "/..." it is
	// also every package below it.
	pkgs string
	// notLinks: no package in the closure is one of these or below one
	// of them. Packages under the rule's own root are exempt, so that
	// "storage/..." may link storage/record while linking nothing else
	// of the module.
	notLinks []string
	// allow are packages notLinks lets through all the same (each held
	// to the standard library by a rule of its own).
	allow []string
	// stdOnly: the closure holds only the standard library (and the
	// rule's own root).
	stdOnly bool
	// notImports are standard packages the package may not import
	// itself (its closure may: every standard package links sync).
	notImports []string
	why        string
}

var rules = []rule{
	// DESIGN.md, "Packages".
	{pkgs: "inference/...", notLinks: []string{badger, paho}, why: "DESIGN.md"},
	{pkgs: "watchdog/...", notLinks: []string{onnxruntime, badger, paho, zap}, why: "DESIGN.md"},
	{pkgs: "hw/...", notLinks: []string{badger, paho}, why: "DESIGN.md"},
	{pkgs: "storage/...", notLinks: []string{paho, onnxruntime}, why: "DESIGN.md"},
	{pkgs: "sync/...", notLinks: []string{onnxruntime}, why: "DESIGN.md"},
	{pkgs: "models/...", notLinks: []string{badger, paho}, why: "DESIGN.md"},

	// Below the daemon's wiring.
	{pkgs: "watchdog/...", notLinks: []string{module + "/hw"}, why: "the shell takes watchdog.HealthSample; the daemon adapts hw's readings (agent.HealthSample)"},
	{pkgs: "storage/...", notLinks: []string{module}, allow: []string{module + "/internal/clock"}, why: "storage is a leaf of the module (but for the clock)"},
	{pkgs: "internal/clock", stdOnly: true, why: "every layer may take its time from it"},

	// Small tools link small packages (STYLE.md, habit 11).
	{pkgs: "sync/batch", notLinks: []string{badger}, why: "batches are built from storage/record, not the store"},
	{pkgs: "sync/command", notLinks: []string{badger}, why: "the nonce cache asks for a StateKV, not the store"},
	{pkgs: "sync/sink", notLinks: []string{badger}, why: "the cloud side keeps batches in files, not in Badger"},
	{pkgs: "sync/ingest", notLinks: []string{badger}, why: "the cloud side keeps batches in files, not in Badger"},
	{pkgs: "sync/ckptlink", notLinks: []string{badger}, why: "the checkpoint receiver runs in vigil-fleet, which never links Badger"},
	{pkgs: "sync/blob", notLinks: []string{badger}, why: "the fleet's checkpoint store keeps chunks in files"},
	{pkgs: "sync/drillstore", notLinks: []string{onnxruntime, badger, nvml}, why: "the fleet's drill store keeps reports in files"},
	{pkgs: "agent/drill/...", notLinks: []string{onnxruntime, badger, nvml, paho}, why: "drill scenarios, reports and their pictures are read by vigilctl and vigil-fleet"},
	{pkgs: "cmd/vigilctl", notLinks: []string{onnxruntime, badger, nvml, paho}, why: "vigilctl talks to the daemon over its socket"},
	{pkgs: "cmd/vigil-fleet", notLinks: []string{onnxruntime, badger, nvml}, why: "the fleet side runs in the cloud, without a GPU or a vehicle's store"},
	{pkgs: "hw/sample", stdOnly: true, why: "the reading in the status document, decoded by vigilctl"},
	{pkgs: "storage/record", stdOnly: true, why: "the records the sync packages batch and ingest"},
	{pkgs: "storage/checkpoint/manifest", stdOnly: true, why: "the fleet side reads, verifies and exports checkpoints without Badger"},

	// The Go client is written from docs/protocol.md alone.
	{pkgs: "agent/client", notLinks: []string{module}, why: "the client shares no code with the server"},
	// The socket codec is a codec.
	{pkgs: "agent/wire", stdOnly: true, notImports: []string{"os", "net", "syscall", "sync", "io", "log"}, why: "the codec does no I/O"},
}

// pending are breaches of the rules that work under way removes, each
// with its issue: the test reports them and passes. Once one no longer
// occurs the test fails until its entry goes, so the list only shrinks.
// A key is the package (relative to the module), a space and what the
// rule forbids, as the rule spells it ("std" for stdOnly; "imports os"
// for notImports).
var pending = map[string]string{}

// builds are the configurations the closure is computed for: the daemon's
// targets, with cgo (NVML is only linked with cgo).
var builds = []struct{ goos, goarch string }{
	{"linux", "amd64"},
	{"linux", "arm64"},
}

type listedPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// breach is one rule broken by one package: what it must not do, the
// chain of imports that shows it does, and the builds it happens in.
type breach struct {
	finding
	why    string
	builds []string
}

type finding struct {
	what  string // "link github.com/dgraph-io/badger", "import os", ...
	chain string
}

func TestLayering(t *testing.T) {
	found := map[string]*breach{}
	var order []string
	for _, b := range builds {
		build := b.goos + "/" + b.goarch
		pkgs := list(t, b.goos, b.goarch)
		for _, r := range rules {
			matched := 0
			for _, path := range sortedKeys(pkgs) {
				p := pkgs[path]
				if !r.matches(path) {
					continue
				}
				matched++
				for key, f := range r.check(p, pkgs) {
					br := found[key]
					if br == nil {
						br = &breach{finding: f, why: r.why}
						found[key] = br
						order = append(order, key)
					}
					br.builds = append(br.builds, build)
				}
			}
			if matched == 0 {
				t.Errorf("rule %q matches no package of %s (%s): renamed or moved? Update the rule", r.pkgs, module, build)
			}
		}
	}
	for _, key := range order {
		br := found[key]
		if issue, ok := pending[key]; ok {
			t.Logf("pending (%s): %s: %s [%s]", issue, key, br.chain, strings.Join(br.builds, ", "))
			continue
		}
		pkg, _, _ := strings.Cut(key, " ")
		t.Errorf("%s must not %s (%s): %s [%s]", pkg, br.what, br.why, br.chain, strings.Join(br.builds, ", "))
	}
	for _, key := range sortedKeys(pending) {
		if found[key] == nil {
			t.Errorf("pending entry %q (%s) no longer occurs: remove it from pending in layering_test.go", key, pending[key])
		}
	}
}

// matches reports whether the package path (a full import path) falls
// under the rule.
func (r rule) matches(path string) bool {
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return false
	}
	if root, ok := strings.CutSuffix(r.pkgs, "/..."); ok {
		return under(rel, root)
	}
	return rel == r.pkgs
}

// own reports whether dep is under the rule's own root, which is exempt.
func (r rule) own(dep string) bool {
	return under(dep, module+"/"+strings.TrimSuffix(r.pkgs, "/..."))
}

// check returns the rule's breaches by p, keyed as pending is.
func (r rule) check(p *listedPackage, pkgs map[string]*listedPackage) map[string]finding {
	out := map[string]finding{}
	self := rel(p.ImportPath)
	for _, f := range r.notLinks {
		if chain := chainTo(p, pkgs, func(q *listedPackage) bool {
			return under(q.ImportPath, f) && !r.own(q.ImportPath) && !slices.Contains(r.allow, q.ImportPath)
		}); chain != "" {
			out[self+" "+f] = finding{"link " + f, chain}
		}
	}
	if r.stdOnly {
		if chain := chainTo(p, pkgs, func(q *listedPackage) bool { return !q.Standard && !r.own(q.ImportPath) }); chain != "" {
			out[self+" std"] = finding{"link anything outside the standard library", chain}
		}
	}
	for _, f := range r.notImports {
		if slices.Contains(p.Imports, f) {
			out[self+" imports "+f] = finding{"import " + f, self + " imports " + f}
		}
	}
	return out
}

// chainTo finds, breadth first, the shortest chain of imports from p to a
// package that bad reports, and spells it "a → b → c"; "" if there is none.
func chainTo(p *listedPackage, pkgs map[string]*listedPackage, bad func(*listedPackage) bool) string {
	from := map[string]string{p.ImportPath: ""}
	queue := []string{p.ImportPath}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		q := pkgs[cur]
		if q == nil {
			continue // "C", or a package go list could not find (reported by list)
		}
		if cur != p.ImportPath && bad(q) {
			var chain []string
			for at := cur; at != ""; at = from[at] {
				chain = append(chain, rel(at))
			}
			slices.Reverse(chain)
			return strings.Join(chain, " → ")
		}
		for _, next := range q.Imports {
			if _, seen := from[next]; !seen {
				from[next] = cur
				queue = append(queue, next)
			}
		}
	}
	return ""
}

// list runs go list -deps over the module for one build and returns every
// package it lists (the module's and their dependencies) by import path.
func list(t *testing.T, goos, goarch string) map[string]*listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Standard,Imports,Deps,Error", "./...")
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./... (%s/%s): %v\n%s", goos, goarch, err, stderr.Bytes())
	}
	pkgs := map[string]*listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -deps ./... (%s/%s): decode: %v", goos, goarch, err)
		}
		if p.Error != nil && under(p.ImportPath, module) {
			// The graph is incomplete, so a rule could pass by mistake.
			t.Errorf("go list (%s/%s): %s: %s", goos, goarch, p.ImportPath, p.Error.Err)
		}
		pkgs[p.ImportPath] = &p
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list -deps ./... (%s/%s) listed no packages", goos, goarch)
	}
	return pkgs
}

// under reports whether path is root or a package below it.
func under(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}

// rel shortens a path of the module to its part inside it.
func rel(path string) string {
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return path
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestLayeringChain checks the chain the failures print on a small graph.
func TestLayeringChain(t *testing.T) {
	pkgs := map[string]*listedPackage{}
	for _, p := range []listedPackage{
		{ImportPath: module + "/cmd/tool", Imports: []string{"fmt", module + "/a"}},
		{ImportPath: module + "/a", Imports: []string{module + "/b", module + "/c"}},
		{ImportPath: module + "/b", Imports: []string{module + "/c"}},
		{ImportPath: module + "/c", Imports: []string{badger + "/v4"}},
		{ImportPath: badger + "/v4", Imports: []string{"fmt"}},
		{ImportPath: "fmt", Standard: true},
	} {
		pkgs[p.ImportPath] = &p
	}
	r := rule{pkgs: "cmd/tool", notLinks: []string{badger, paho}}
	got := r.check(pkgs[module+"/cmd/tool"], pkgs)
	want := map[string]finding{"cmd/tool " + badger: {"link " + badger, "cmd/tool → a → c → " + badger + "/v4"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("check = %v, want %v", got, want)
	}
	r = rule{pkgs: "a/...", notLinks: []string{module}, stdOnly: true, notImports: []string{"os"}}
	got = r.check(pkgs[module+"/a"], pkgs)
	want = map[string]finding{
		"a " + module: {"link " + module, "a → b"},
		"a std":       {"link anything outside the standard library", "a → b"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("check = %v, want %v", got, want)
	}
}
