package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"
)

// pinnedRolloutSHA256 is the SHA-256 of each rollout model. After an
// intended change, update it as pinnedSHA256 says (run
// `go test ./models/demo -run TestRolloutDeterministic`), bumping Version if
// the shared generator changed.
var pinnedRolloutSHA256 = map[string]string{
	PrimaryV2:   "6871feaf0e32c3f2e254efd60b76c03fc4834e1fe46cbf52131bb0105f3818b5",
	PrimaryBad:  "5deff306751f8d1270d7715465ab595b8fc91b0aebf12868c5d23acbdf4a2379",
	PrimarySlow: "15da4e6464faa5e57822877ef5176f279e821ce238abc4b8ca72f83bbbcd6b2d",
}

func TestRolloutDeterministic(t *testing.T) {
	for _, name := range Rollouts {
		first, second := mustRollout(t, name), mustRollout(t, name)
		if !bytes.Equal(first, second) {
			t.Errorf("%s: two generations differ (%d and %d bytes)", name, len(first), len(second))
		}
		sum := sha256.Sum256(first)
		if got := hex.EncodeToString(sum[:]); got != pinnedRolloutSHA256[name] {
			t.Errorf("%s: SHA-256 changed\n got  %s\n want %s\n(see pinnedRolloutSHA256 for how to update)", name, got, pinnedRolloutSHA256[name])
		}
	}
}

func TestGenerateRolloutUnknown(t *testing.T) {
	for _, name := range []string{"primary-v3", RolePrimary, ""} {
		if _, err := GenerateRollout(name); !errors.Is(err, ErrUnknownRollout) || !strings.Contains(err.Error(), strconv.Quote(name)) {
			t.Errorf("GenerateRollout(%q) error = %v, want ErrUnknownRollout naming it", name, err)
		}
	}
}

func TestWriteRollouts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "models")
	paths, err := WriteRollouts(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "primary-v2.onnx"), filepath.Join(dir, "primary-bad.onnx"), filepath.Join(dir, "primary-slow.onnx")}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths = %v, want %v", paths, want)
	}
	for i, name := range Rollouts {
		got, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, mustRollout(t, name)) {
			t.Errorf("%s differs from GenerateRollout(%q)", paths[i], name)
		}
	}
	// Beside the demo models, a second run replaces the files and leaves
	// nothing else behind.
	if _, err := WriteAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteRollouts(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	wantNames := []string{"degraded.onnx", "primary-bad.onnx", "primary-slow.onnx", "primary-v2.onnx", "primary.onnx", "shadow.onnx"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("directory holds %v, want %v", names, wantNames)
	}
}

func TestWriteRolloutsReportsPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteRollouts(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("WriteRollouts(file) error = %v, want one naming %s", err, file)
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != "keep" {
		t.Errorf("the file in the way now holds %q (err %v), want it untouched", got, err)
	}
}

// TestRolloutContract reads each rollout model through ONNX Runtime, from
// the files WriteRollouts writes, as the inference layer would: the same
// inputs and outputs as the primary, the same metadata keys, and the values
// each version should carry.
func TestRolloutContract(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteRollouts(dir); err != nil {
		t.Fatal(err)
	}
	primaryPath := filepath.Join(dir, FileName(RolePrimary))
	wantIn, wantOut, err := ort.GetInputOutputInfo(primaryPath)
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := metadataOf(t, primaryPath)
	versions := map[string]string{PrimaryV2: PrimaryV2Version, PrimaryBad: PrimaryBadVersion, PrimarySlow: PrimarySlowVersion}
	seeds := map[string]uint64{PrimaryV2: PrimaryV2Seed, PrimaryBad: PrimarySeed, PrimarySlow: PrimarySlowSeed}
	for _, name := range Rollouts {
		path := filepath.Join(dir, FileName(name))
		in, out, err := ort.GetInputOutputInfo(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !slices.EqualFunc(in, wantIn, sameInfo) || !slices.EqualFunc(out, wantOut, sameInfo) {
			t.Errorf("%s: inputs %v outputs %v, want the primary's %v and %v", name, in, out, wantIn, wantOut)
		}
		got := metadataOf(t, path)
		want := map[string]string{}
		for k, v := range wantMeta {
			want[k] = v
		}
		want[MetaVersion] = versions[name]
		want[MetaSeed] = strconv.FormatUint(seeds[name], 10)
		if len(got) != len(want) {
			t.Errorf("%s: metadata %v, want %v", name, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: metadata %q = %q, want %q", name, k, got[k], v)
			}
		}
	}
	if wantMeta[MetaName] != "pilotnet" || wantMeta[MetaRole] != RolePrimary {
		t.Errorf("primary metadata %v: the rollouts should share its name pilotnet and role primary", wantMeta)
	}
	// Versions rise in Rollouts order, all above the primary's.
	prev := leadingNumber(t, Version)
	for _, name := range Rollouts {
		v := leadingNumber(t, versions[name])
		if v <= prev {
			t.Errorf("%s: version %s does not rise above %d", name, versions[name], prev)
		}
		prev = v
	}
}

func sameInfo(a, b ort.InputOutputInfo) bool {
	return a.Name == b.Name && a.OrtValueType == b.OrtValueType && a.DataType == b.DataType &&
		slices.Equal(a.Dimensions, b.Dimensions)
}

// metadataOf returns every custom metadata entry of the model at path.
func metadataOf(t *testing.T, path string) map[string]string {
	t.Helper()
	md, err := ort.GetModelMetadata(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		v, _, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			t.Fatalf("%s: metadata %q: %v", path, k, err)
		}
		m[k] = v
	}
	return m
}

func leadingNumber(t *testing.T, version string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.SplitN(version, ".", 2)[0])
	if err != nil {
		t.Fatalf("version %q does not start with a number: %v", version, err)
	}
	return n
}

// TestRolloutDefinitions checks each rollout model's definition on the
// graphs themselves: V2 is the primary's graph with every initializer
// within V2Perturbation of the primary's (and most of them moved); Bad and
// Slow keep every primary initializer bit for bit and add only their own
// nodes.
func TestRolloutDefinitions(t *testing.T) {
	primary := graphOf(t, mustGenerate(t, RolePrimary))

	v2 := graphOf(t, mustRollout(t, PrimaryV2))
	if !sameNodes(primary.Node, v2.Node) || len(v2.Initializer) != len(primary.Initializer) {
		t.Fatal("v2 graph structure differs from the primary's")
	}
	moved, total := 0, 0
	for i, p := range primary.Initializer {
		q := v2.Initializer[i]
		pv, qv := floats(p.RawData), floats(q.RawData)
		if p.Name != q.Name || len(pv) != len(qv) {
			t.Fatalf("initializer %d: primary %s[%d], v2 %s[%d]", i, p.Name, len(pv), q.Name, len(qv))
		}
		for j := range pv {
			// float32 rounding of the product adds at most half an ulp.
			bound := V2Perturbation*math.Abs(float64(pv[j])) + math.Abs(float64(pv[j]))*0x1p-24
			if d := math.Abs(float64(qv[j] - pv[j])); d > bound {
				t.Fatalf("%s[%d]: v2 %g, primary %g: moved %g, more than %g of it", p.Name, j, qv[j], pv[j], d, V2Perturbation)
			}
			if qv[j] != pv[j] {
				moved++
			}
			total++
		}
	}
	if moved < total*9/10 {
		t.Errorf("v2 moved %d of %d weights, want nearly all", moved, total)
	}

	for _, c := range []struct {
		name     string
		addNodes int
		addInits []string
	}{
		{PrimaryBad, 1, []string{"logits.shift"}},
		{PrimarySlow, 2*SlowLayers + 3, []string{"slow.weight", "slow.scale"}},
	} {
		g := graphOf(t, mustRollout(t, c.name))
		if len(g.Node) != len(primary.Node)+c.addNodes {
			t.Errorf("%s: %d nodes, want the primary's %d plus %d", c.name, len(g.Node), len(primary.Node), c.addNodes)
		}
		inits := map[string]*onnx.TensorProto{}
		for _, in := range g.Initializer {
			inits[in.Name] = in
		}
		for _, p := range primary.Initializer {
			if q := inits[p.Name]; q == nil || !bytes.Equal(q.RawData, p.RawData) {
				t.Errorf("%s: initializer %s differs from the primary's", c.name, p.Name)
			}
			delete(inits, p.Name)
		}
		var extra []string
		for name := range inits {
			extra = append(extra, name)
		}
		slices.Sort(extra)
		want := slices.Sorted(slices.Values(c.addInits))
		if !slices.Equal(extra, want) {
			t.Errorf("%s: initializers beyond the primary's %v, want %v", c.name, extra, want)
		}
	}
}

func graphOf(t *testing.T, data []byte) *onnx.GraphProto {
	t.Helper()
	var m onnx.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m.Graph
}

func sameNodes(a, b []*onnx.NodeProto) bool {
	return slices.EqualFunc(a, b, func(x, y *onnx.NodeProto) bool { return proto.Equal(x, y) })
}

func mustRollout(t testing.TB, name string) []byte {
	t.Helper()
	data, err := GenerateRollout(name)
	if err != nil {
		t.Fatalf("generate %s: %v", name, err)
	}
	return data
}
