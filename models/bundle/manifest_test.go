package bundle

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// goldenManifest is the manifest whose canonical form docs/models.md
// shows.
func goldenManifest() *Manifest {
	return &Manifest{
		Format: 1, Name: "pilotnet", Version: 2,
		Roles: []Role{RolePrimary}, Model: "primary.onnx",
		Contract: demoContract,
		Files:    []File{{Path: "primary.onnx", SHA256: strings.Repeat("ab", 32), Size: 1011151}},
		MinVigil: "0.1.0", Providers: []string{"cpu"},
		Tolerance: &Tolerance{Abs: 0.02},
		Created:   t0, Expires: t0.Add(30 * 24 * time.Hour),
	}
}

const goldenCanonical = `{"format":1,"name":"pilotnet","version":2,"roles":["primary"],"model":"primary.onnx",` +
	`"contract":{"inputs":[{"name":"frame","type":"float32","shape":[1,3,66,200]}],"outputs":[{"name":"controls","type":"float32","shape":[1,3]}]},` +
	`"files":[{"path":"primary.onnx","sha256":"abababababababababababababababababababababababababababababababab","size":1011151}],` +
	`"min_vigil":"0.1.0","providers":["cpu"],"tolerance":{"abs":0.02,"rel":0},` +
	`"created":"2026-03-01T12:00:00Z","expires":"2026-03-31T12:00:00Z"}`

// TestCanonical pins the signed bytes to the form docs/models.md spells
// out, and shows they do not depend on bundle.json's layout.
func TestCanonical(t *testing.T) {
	m := goldenManifest()
	got, err := Canonical(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != goldenCanonical {
		t.Fatalf("canonical form\n got %s\nwant %s", got, goldenCanonical)
	}
	// Optional members are left out when empty; the signature never is
	// part of it.
	m.Providers, m.Tolerance = nil, nil
	_, priv, _, _ := GenerateKey(nil)
	if err := Sign(m, priv); err != nil {
		t.Fatal(err)
	}
	got, _ = Canonical(m)
	want := strings.Replace(goldenCanonical, `"providers":["cpu"],"tolerance":{"abs":0.02,"rel":0},`, "", 1)
	if string(got) != want {
		t.Errorf("without the optional members\n got %s\nwant %s", got, want)
	}

	// Only " and \ are escaped; <, > and & stay as they are.
	m = goldenManifest()
	m.Contract.Inputs[0].Name = `a<b>&"c\d`
	defer func() { demoContract.Inputs[0].Name = "frame" }()
	got, _ = Canonical(m)
	if !bytes.Contains(got, []byte(`"name":"a<b>&\"c\\d"`)) {
		t.Errorf("escapes: %s", got)
	}
	m.Contract.Inputs[0].Name = "frame"

	// bundle.json laid out otherwise (members sorted, other spacing)
	// reads as the same manifest, whose signature still verifies.
	m = goldenManifest()
	if err := Sign(m, priv); err != nil {
		t.Fatal(err)
	}
	enc, _ := Encode(m)
	var generic map[string]any
	if err := json.Unmarshal(enc, &generic); err != nil {
		t.Fatal(err)
	}
	sorted, _ := json.MarshalIndent(generic, "", "\t")
	back, err := Parse(sorted)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := Canonical(m)
	c2, _ := Canonical(back)
	if !bytes.Equal(c1, c2) {
		t.Errorf("a re-laid-out manifest canonicalises differently:\n%s\n%s", c1, c2)
	}
	if err := checkSignature(back, []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}); err != nil {
		t.Error(err)
	}
	h1, _ := m.Hash()
	h2, _ := back.Hash()
	if h1 != h2 {
		t.Error("the hash depends on the layout")
	}
}

// manifestEdit changes a manifest decoded as generic JSON.
type manifestEdit = func(m map[string]any)

func setMember(key string, v any) manifestEdit { return func(m map[string]any) { m[key] = v } }
func delMember(key string) manifestEdit        { return func(m map[string]any) { delete(m, key) } }

func setFile(key string, v any) manifestEdit {
	return func(m map[string]any) { m["files"].([]any)[0].(map[string]any)[key] = v }
}

func setInput(key string, v any) manifestEdit {
	return func(m map[string]any) {
		m["contract"].(map[string]any)["inputs"].([]any)[0].(map[string]any)[key] = v
	}
}

// parseRefusals are manifests Parse refuses: an edit of a good one, the
// error and what the error names.
var parseRefusals = []struct {
	name    string
	edit    manifestEdit
	want    error
	mention string
}{
	{"format missing", delMember("format"), ErrMalformed, "format is missing"},
	{"format 0", setMember("format", 0), ErrFormatVersion, "format 0"},
	{"format 2", setMember("format", 2), ErrFormatVersion, "format 2"},
	{"format as a string", setMember("format", "1"), ErrMalformed, ""},
	{"unknown field", setMember("comment", "x"), ErrMalformed, `unknown field "comment"`},
	{"version 0", setMember("version", 0), ErrMalformed, "field version"},
	{"negative version", setMember("version", -1), ErrMalformed, "version"},
	{"version as a string", setMember("version", "2"), ErrMalformed, "version"},
	{"empty name", setMember("name", ""), ErrMalformed, "field name"},
	{"upper-case name", setMember("name", "PilotNet"), ErrMalformed, "field name"},
	{"name with a slash", setMember("name", "a/b"), ErrMalformed, "field name"},
	{"no roles", setMember("roles", []any{}), ErrMalformed, "field roles"},
	{"unknown role", setMember("roles", []any{"primary", "copilot"}), ErrUnknownRole, `"copilot"`},
	{"role twice", setMember("roles", []any{"primary", "primary"}), ErrMalformed, "listed twice"},
	{"model not among the files", setMember("model", "other.onnx"), ErrMalformed, "field model"},
	{"no model", delMember("model"), ErrMalformed, "field model"},
	{"no files", setMember("files", []any{}), ErrMalformed, "field files"},
	{"path with ..", setFile("path", "models/../../x"), ErrBadPath, "leaves the bundle"},
	{"absolute path", setFile("path", "/primary.onnx"), ErrBadPath, "absolute"},
	{"unclean path", setFile("path", "a//primary.onnx"), ErrBadPath, "not clean"},
	{"dot path", setFile("path", "./primary.onnx"), ErrBadPath, "not clean"},
	{"backslash path", setFile("path", `a\primary.onnx`), ErrBadPath, "backslash"},
	{"the manifest as a file", setFile("path", ManifestName), ErrBadPath, "manifest's own name"},
	{"control character in a path", setFile("path", "a\nb"), ErrBadPath, "control"},
	{"upper-case hash", setFile("sha256", strings.Repeat("AB", 32)), ErrMalformed, "files[0].sha256"},
	{"short hash", setFile("sha256", "abab"), ErrMalformed, "files[0].sha256"},
	{"negative size", setFile("size", -1), ErrMalformed, "files[0].size"},
	{"files out of order", func(m map[string]any) {
		f := m["files"].([]any)
		m["files"] = []any{f[0], map[string]any{"path": "a.bin", "sha256": strings.Repeat("00", 32), "size": 1}}
	}, ErrMalformed, "ascending order"},
	{"file twice", func(m map[string]any) {
		f := m["files"].([]any)
		m["files"] = []any{f[0], f[0]}
	}, ErrMalformed, "ascending order"},
	{"min_vigil with a v", setMember("min_vigil", "v0.1.0"), ErrMalformed, "min_vigil"},
	{"min_vigil of two numbers", setMember("min_vigil", "0.1"), ErrMalformed, "min_vigil"},
	{"min_vigil missing", delMember("min_vigil"), ErrMalformed, "min_vigil"},
	{"upper-case provider", setMember("providers", []any{"CUDA"}), ErrMalformed, "providers"},
	{"provider twice", setMember("providers", []any{"cpu", "cpu"}), ErrMalformed, "listed twice"},
	{"negative tolerance", setMember("tolerance", map[string]any{"abs": -0.1, "rel": 0}), ErrMalformed, "tolerance.abs"},
	{"created with an offset", setMember("created", "2026-03-01T14:00:00+02:00"), ErrMalformed, "field created"},
	{"created with a fraction", setMember("created", "2026-03-01T12:00:00.5Z"), ErrMalformed, "field created"},
	{"created not a time", setMember("created", "yesterday"), ErrMalformed, "created"},
	{"no expiry", delMember("expires"), ErrMalformed, "field expires: missing"},
	{"expires before created", setMember("expires", "2026-02-01T12:00:00Z"), ErrMalformed, "not after created"},
	{"bad key id", func(m map[string]any) { m["signature"].(map[string]any)["key_id"] = "xyz" }, ErrMalformed, "signature.key_id"},
	{"short signature", func(m map[string]any) { m["signature"].(map[string]any)["ed25519"] = "AAAA" }, ErrMalformed, "signature.ed25519"},
	{"no inputs", func(m map[string]any) { m["contract"].(map[string]any)["inputs"] = []any{} }, ErrMalformed, "contract"},
	{"unknown element type", setInput("type", "float"), ErrMalformed, "contract.inputs[0].type"},
	{"zero dimension", setInput("shape", []any{1, 0}), ErrMalformed, "contract.inputs[0].shape"},
	{"no shape", setInput("shape", nil), ErrMalformed, "contract.inputs[0].shape"},
	{"empty tensor name", setInput("name", ""), ErrMalformed, "contract.inputs[0].name"},
	{"control character in a name", setInput("name", "fr\u2028ame"), ErrMalformed, "control character"},
	{"unknown contract field", setInput("dtype", "float32"), ErrMalformed, `unknown field "dtype"`},
}

// TestParseRefusals: each bad manifest is refused by Parse with the error
// callers branch on, naming the field.
func TestParseRefusals(t *testing.T) {
	m := goldenManifest()
	_, priv, _, _ := GenerateKey(nil)
	if err := Sign(m, priv); err != nil {
		t.Fatal(err)
	}
	good, _ := Encode(m)
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
	for _, c := range parseRefusals {
		var generic map[string]any
		if err := json.Unmarshal(good, &generic); err != nil {
			t.Fatal(err)
		}
		c.edit(generic)
		data, err := json.Marshal(generic)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(data)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: %v, want %v mentioning %q", c.name, err, c.want, c.mention)
		}
	}

	for name, data := range map[string][]byte{
		"not JSON":       []byte("pilotnet v2"),
		"an array":       []byte("[1]"),
		"trailing data":  append(append([]byte{}, good...), []byte(`{"format":1}`)...),
		"too large":      append(append([]byte{}, good[:len(good)-2]...), []byte(`,"x":"`+strings.Repeat("x", MaxManifestSize)+`"}`)...),
		"half a message": good[:len(good)/2],
	} {
		if _, err := Parse(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestValidateInCode: Sign, Canonical, Encode and Hash refuse a manifest
// built in code that Parse would refuse, so that nothing invalid is
// signed or written.
func TestValidateInCode(t *testing.T) {
	_, priv, _, _ := GenerateKey(nil)
	for name, edit := range map[string]func(m *Manifest){
		"NaN tolerance":  func(m *Manifest) { m.Tolerance.Rel = math.NaN() },
		"local time":     func(m *Manifest) { m.Created = m.Created.In(time.FixedZone("CET", 3600)) },
		"unknown role":   func(m *Manifest) { m.Roles = []Role{"pilot"} },
		"nil shape":      func(m *Manifest) { m.Contract.Outputs = []Tensor{{Name: "y", Type: "float32"}} },
		"format 2":       func(m *Manifest) { m.Format = 2 },
		"unsorted files": func(m *Manifest) { m.Files = append(m.Files, File{Path: "a", SHA256: strings.Repeat("0", 64)}) },
	} {
		m := goldenManifest()
		edit(m)
		if err := Sign(m, priv); err == nil || m.Signature != nil {
			t.Errorf("%s: Sign: %v", name, err)
		}
		if _, err := Encode(m); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
		if _, err := m.Hash(); err == nil {
			t.Errorf("%s: Hash succeeded", name)
		}
	}
	m := goldenManifest()
	if err := Sign(m, priv[:10]); err == nil {
		t.Error("Sign with a short key")
	}
	if !m.HasRole(RolePrimary) || m.HasRole(RoleDegraded) {
		t.Error("HasRole")
	}
}
