package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-av/vigil/models/demo"
)

// TestRoundTrip makes a bundle of a real model, signs it, packs it, and
// reads and verifies both forms: the files read back are the files
// written, and the two forms have one identity.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	tarPath := f.pack(t)
	want, _ := os.ReadFile(filepath.Join(f.dir, "primary.onnx"))
	var hashes []string
	for _, path := range []string{f.dir, tarPath} {
		b, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Verify(f.pol, f.now); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if b.Packed != (path == tarPath) {
			t.Errorf("%s: Packed %v", path, b.Packed)
		}
		got, err := fs.ReadFile(b.Files, "primary.onnx")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: primary.onnx read back differs (%v)", path, err)
		}
		c, err := ContractFromONNX(got)
		if err != nil || c.Compatible(b.Manifest.Contract) != nil {
			t.Errorf("%s: the model's own contract %v (%v) is not the manifest's", path, c, err)
		}
		h, err := b.Manifest.Hash()
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}
	if hashes[0] != hashes[1] || len(hashes[0]) != 64 {
		t.Errorf("hashes %v: the directory and the tar should have one identity", hashes)
	}

	// The same bundle packs to the same bytes.
	first, _ := os.ReadFile(tarPath)
	if again, _ := os.ReadFile(f.pack(t)); !bytes.Equal(first, again) {
		t.Error("packing twice gave different tars")
	}
	// A tar whose entries are named "./x", with a directory entry for the
	// root, as tar -C dir . writes it, reads the same.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	addTar(t, tw, &tar.Header{Typeflag: tar.TypeDir, Name: "./"}, nil)
	for _, p := range []string{ManifestName, "primary.onnx", "notes/README.txt"} {
		data, _ := os.ReadFile(filepath.Join(f.dir, p))
		addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: "./" + p, Mode: 0o644}, data)
	}
	tw.Close()
	dotTar := filepath.Join(t.TempDir(), "dot.tar")
	writeFile(t, dotTar, buf.Bytes())
	if err := verifyPath(dotTar, f.pol, f.now); err != nil {
		t.Errorf("a ./-named tar: %v", err)
	}

	// Re-signing with another key changes the identity.
	_, other, _, _ := GenerateKey(nil)
	if err := Sign(f.m, other); err != nil {
		t.Fatal(err)
	}
	if h, _ := f.m.Hash(); h == hashes[0] {
		t.Error("the hash did not change with the signature")
	}
}

// TestVerifyBoundaries: the last second before expiry, a created as far
// ahead as the skew allows, and the version just above the floor pass.
func TestVerifyBoundaries(t *testing.T) {
	f := newFixture(t)
	for _, now := range []time.Time{f.m.Expires.Add(-time.Second), t0.Add(-DefaultSkew)} {
		if err := verifyPath(f.dir, f.pol, now); err != nil {
			t.Errorf("at %s: %v", now, err)
		}
	}
	p := f.pol
	p.Skew = time.Hour
	if err := verifyPath(f.dir, p, t0.Add(-time.Hour)); err != nil {
		t.Errorf("an hour of skew allowed: %v", err)
	}
	p = f.pol
	p.Contracts = nil // a tool that knows no vehicle
	p.Floors = nil
	if err := verifyPath(f.dir, p, f.now); err != nil {
		t.Errorf("no contracts, no floors: %v", err)
	}
	p = f.pol
	p.VigilVersion = "0.10.0"
	if err := verifyPath(f.dir, p, f.now); err != nil {
		t.Errorf("a newer Vigil: %v", err)
	}
}

// refusal sets up one bad bundle or one policy it fails, and returns the
// path to verify, the policy and the time.
type refusal struct {
	name    string
	setup   func(t *testing.T, f *fixture) (string, Policy, time.Time)
	want    error
	mention string
}

// onDisk returns a setup that changes the bundle directory with change.
func onDisk(change func(t *testing.T, f *fixture)) func(*testing.T, *fixture) (string, Policy, time.Time) {
	return func(t *testing.T, f *fixture) (string, Policy, time.Time) {
		change(t, f)
		return f.dir, f.pol, f.now
	}
}

// withPolicy returns a setup that verifies the good bundle under an edited
// policy, or at another time.
func withPolicy(edit func(f *fixture, p *Policy) time.Time) func(*testing.T, *fixture) (string, Policy, time.Time) {
	return func(t *testing.T, f *fixture) (string, Policy, time.Time) {
		p := f.pol
		now := edit(f, &p)
		return f.dir, p, now
	}
}

// editManifest returns a setup that rewrites bundle.json's text with
// old replaced by new, without signing again.
func editManifest(old, new string) func(*testing.T, *fixture) (string, Policy, time.Time) {
	return onDisk(func(t *testing.T, f *fixture) {
		p := filepath.Join(f.dir, ManifestName)
		b, _ := os.ReadFile(p)
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("bundle.json has no %q:\n%s", old, b)
		}
		writeFile(t, p, bytes.Replace(b, []byte(old), []byte(new), 1))
	})
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off = int64(len(b)) / 2
	}
	b[off] ^= 0x01
	writeFile(t, path, b)
}

var refusals = []refusal{
	{"flipped byte in the model", onDisk(func(t *testing.T, f *fixture) { flipByte(t, filepath.Join(f.dir, "primary.onnx"), -1) }),
		ErrFileMismatch, "primary.onnx has SHA-256"},
	{"flipped byte in another file", onDisk(func(t *testing.T, f *fixture) { flipByte(t, filepath.Join(f.dir, "notes/README.txt"), 0) }),
		ErrFileMismatch, "notes/README.txt"},
	{"flipped byte in a packed bundle", func(t *testing.T, f *fixture) (string, Policy, time.Time) {
		p := f.pack(t)
		b, _ := os.ReadFile(p)
		off := bytes.Index(b, []byte("PilotNet primary"))
		if off < 0 {
			t.Fatal("the file's data is not in the tar")
		}
		flipByte(t, p, int64(off))
		return p, f.pol, f.now
	}, ErrFileMismatch, "notes/README.txt"},
	{"truncated file", onDisk(func(t *testing.T, f *fixture) {
		p := filepath.Join(f.dir, "primary.onnx")
		b, _ := os.ReadFile(p)
		writeFile(t, p, b[:len(b)-1])
	}), ErrFileMismatch, "primary.onnx is"},
	{"missing file", onDisk(func(t *testing.T, f *fixture) { os.Remove(filepath.Join(f.dir, "notes/README.txt")) }),
		ErrMissingFile, "notes/README.txt"},
	{"extra file", onDisk(func(t *testing.T, f *fixture) { writeFile(t, filepath.Join(f.dir, "notes/extra.bin"), []byte{1}) }),
		ErrExtraFile, "notes/extra.bin"},
	{"file from another bundle", onDisk(func(t *testing.T, f *fixture) {
		other, err := demo.Generate(demo.RoleShadow)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(f.dir, "primary.onnx"), other)
	}), ErrFileMismatch, "primary.onnx"},
	{"packed file from another bundle", func(t *testing.T, f *fixture) (string, Policy, time.Time) {
		good := *f.m
		other, _ := demo.Generate(demo.RoleDegraded)
		writeFile(t, filepath.Join(f.dir, "primary.onnx"), other)
		files, _ := HashFiles(os.DirFS(f.dir))
		f.m.Files = files
		p := f.pack(t) // a tar whose manifest describes the other file
		*f.m = good
		f.writeManifest(t)
		// Splice the first tar's files under the good manifest.
		b, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		enc, _ := Encode(f.m)
		addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Mode: 0o644}, enc)
		for _, name := range []string{"notes/README.txt", "primary.onnx"} {
			data, _ := fs.ReadFile(b.Files, name)
			addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data)
		}
		tw.Close()
		out := filepath.Join(t.TempDir(), "spliced.tar")
		writeFile(t, out, buf.Bytes())
		return out, f.pol, f.now
	}, ErrFileMismatch, "primary.onnx"},
	{"unknown key", withPolicy(func(f *fixture, p *Policy) time.Time {
		other, _, _, _ := GenerateKey(nil)
		p.Trusted = []ed25519.PublicKey{other}
		return f.now
	}), ErrUnknownKey, "is not among the 1 trusted"},
	{"manifest changed after signing", editManifest(`"version": 2`, `"version": 9`), ErrBadSignature, "pilotnet v9"},
	{"file list changed after signing", onDisk(func(t *testing.T, f *fixture) {
		flipByte(t, filepath.Join(f.dir, "primary.onnx"), -1)
		files, _ := HashFiles(os.DirFS(f.dir))
		f.m.Files = files // the hashes now match the files, but not the signature
		f.writeManifest(t)
	}), ErrBadSignature, ""},
	{"damaged signature", onDisk(func(t *testing.T, f *fixture) {
		f.m.Signature.Ed25519[0] ^= 1
		f.writeManifest(t)
	}), ErrBadSignature, ""},
	{"unsigned", onDisk(func(t *testing.T, f *fixture) {
		f.m.Signature = nil
		f.writeManifest(t)
	}), ErrUnsigned, "vigil-fleet model sign"},
	{"expired", withPolicy(func(f *fixture, p *Policy) time.Time { return f.m.Expires }), ErrExpired, "expires 2026-03-31T12:00:00Z"},
	{"not yet valid", withPolicy(func(f *fixture, p *Policy) time.Time { return t0.Add(-DefaultSkew - time.Second) }), ErrNotYetValid, "created 2026-03-01T12:00:00Z"},
	{"incompatible contract", withPolicy(func(f *fixture, p *Policy) time.Time {
		c := Contract{Inputs: demoContract.Inputs, Outputs: []Tensor{{Name: "controls", Type: "float32", Shape: []int64{1, 4}}}}
		p.Contracts = map[Role]Contract{RolePrimary: c, RoleShadow: c}
		return f.now
	}), ErrIncompatibleContract, "role primary: output 0"},
	{"batched model for an unbatched role", onDisk(func(t *testing.T, f *fixture) {
		model, _ := demo.GenerateBatched(demo.RolePrimary)
		writeFile(t, filepath.Join(f.dir, "primary.onnx"), model)
		files, _ := HashFiles(os.DirFS(f.dir))
		c, err := ContractFromONNX(model)
		if err != nil {
			t.Fatal(err)
		}
		f.resign(t, func(m *Manifest) { m.Files, m.Contract = files, c })
	}), ErrIncompatibleContract, "[-1 3 66 200]"},
	{"no role the vehicle runs", withPolicy(func(f *fixture, p *Policy) time.Time {
		p.Contracts = map[Role]Contract{RoleDegraded: demoContract}
		return f.now
	}), ErrIncompatibleContract, "runs none of them"},
	{"provider unavailable", onDisk(func(t *testing.T, f *fixture) {
		f.resign(t, func(m *Manifest) { m.Providers = []string{"cuda", "tensorrt"} })
	}), ErrProviderUnavailable, `"tensorrt"`},
	{"Vigil too old", withPolicy(func(f *fixture, p *Policy) time.Time {
		p.VigilVersion = "0.1.0-dev" // a pre-release orders before its release
		return f.now
	}), ErrVigilTooOld, "min_vigil is 0.1.0"},
	{"version at the floor", withPolicy(func(f *fixture, p *Policy) time.Time {
		p.Floors = map[string]uint64{"pilotnet": 2}
		return f.now
	}), ErrBelowFloor, "floor for pilotnet is 2"},
	{"version below the floor", withPolicy(func(f *fixture, p *Policy) time.Time {
		p.Floors = map[string]uint64{"pilotnet": 7}
		return f.now
	}), ErrBelowFloor, "pilotnet version 2"},
	{"unknown role", editManifest(`"shadow"`, `"copilot"`), ErrUnknownRole, `"copilot"`},
	{"malformed JSON", onDisk(func(t *testing.T, f *fixture) {
		p := filepath.Join(f.dir, ManifestName)
		b, _ := os.ReadFile(p)
		writeFile(t, p, b[:len(b)/2])
	}), ErrMalformed, ManifestName},
	{"unknown field", editManifest(`"name":`, `"debug": true, "name":`), ErrMalformed, `unknown field "debug"`},
	{"unknown format version", editManifest(`"format": 1`, `"format": 2`), ErrFormatVersion, "format 2"},
	{"path leaving the bundle", editManifest(`"path": "notes/README.txt"`, `"path": "../README.txt"`), ErrBadPath, "../README.txt"},
	{"absolute path", editManifest(`"path": "notes/README.txt"`, `"path": "/etc/passwd"`), ErrBadPath, "absolute"},
	{"symbolic link in place of a file", onDisk(func(t *testing.T, f *fixture) {
		// The link's target has the right bytes: a bundle's files are
		// its own, never whatever a link points to.
		p := filepath.Join(f.dir, "notes/README.txt")
		outside := filepath.Join(t.TempDir(), "README.txt")
		b, _ := os.ReadFile(p)
		writeFile(t, outside, b)
		os.Remove(p)
		if err := os.Symlink(outside, p); err != nil {
			t.Fatal(err)
		}
	}), ErrBadPath, "notes/README.txt is a symbolic link"},
	{"tar entry leaving the bundle", packed(func(t *testing.T, tw *tar.Writer, f *fixture) {
		addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: "../evil", Mode: 0o644}, []byte("x"))
	}), ErrBadPath, "../evil"},
	{"absolute tar entry", packed(func(t *testing.T, tw *tar.Writer, f *fixture) {
		addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: "/etc/evil", Mode: 0o644}, []byte("x"))
	}), ErrBadPath, "/etc/evil"},
	{"symbolic link in a tar", packed(func(t *testing.T, tw *tar.Writer, f *fixture) {
		addTar(t, tw, &tar.Header{Typeflag: tar.TypeSymlink, Name: "notes/link", Linkname: "/etc/passwd"}, nil)
	}), ErrBadPath, "notes/link"},
	{"tar entry twice", packed(func(t *testing.T, tw *tar.Writer, f *fixture) {
		addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: "primary.onnx", Mode: 0o644}, []byte("x"))
	}), ErrMalformed, `"primary.onnx" appears twice`},
	{"tar not starting with the manifest", func(t *testing.T, f *fixture) (string, Policy, time.Time) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: "primary.onnx", Mode: 0o644}, []byte("x"))
		tw.Close()
		p := filepath.Join(t.TempDir(), "b.tar")
		writeFile(t, p, buf.Bytes())
		return p, f.pol, f.now
	}, ErrMalformed, "starts with bundle.json"},
	{"not a tar", func(t *testing.T, f *fixture) (string, Policy, time.Time) {
		p := filepath.Join(t.TempDir(), "b.tar")
		writeFile(t, p, []byte(strings.Repeat("not a tar ", 100)))
		return p, f.pol, f.now
	}, ErrMalformed, "tar"},
	{"directory without a manifest", onDisk(func(t *testing.T, f *fixture) { os.Remove(filepath.Join(f.dir, ManifestName)) }),
		ErrMalformed, "not a bundle directory"},
}

// packed returns a setup that packs the fixture's bundle and then adds
// entries with add.
func packed(add func(t *testing.T, tw *tar.Writer, f *fixture)) func(*testing.T, *fixture) (string, Policy, time.Time) {
	return func(t *testing.T, f *fixture) (string, Policy, time.Time) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		enc, _ := Encode(f.m)
		addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Mode: 0o644}, enc)
		for _, fl := range f.m.Files {
			data, _ := os.ReadFile(filepath.Join(f.dir, fl.Path))
			addTar(t, tw, &tar.Header{Typeflag: tar.TypeReg, Name: fl.Path, Mode: 0o644}, data)
		}
		add(t, tw, f)
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "b.tar")
		writeFile(t, p, buf.Bytes())
		return p, f.pol, f.now
	}
}

func addTar(t *testing.T, tw *tar.Writer, h *tar.Header, data []byte) {
	t.Helper()
	h.Size = int64(len(data))
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(tw, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

// TestRefusals: each bad bundle, and each vehicle a good bundle does not
// suit, is refused with its own error naming what is wrong, and
// verifying changes nothing on disk.
func TestRefusals(t *testing.T) {
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			path, pol, now := c.setup(t, f)
			root := filepath.Dir(path)
			before := snapshot(t, root)
			err := verifyPath(path, pol, now)
			wantErr(t, err, c.want, c.mention)
			sameSnapshot(t, before, snapshot(t, root))
		})
	}
}

// TestPolicyValidate: a policy that cannot judge a bundle is the caller's
// error, not a refusal of the bundle.
func TestPolicyValidate(t *testing.T) {
	f := newFixture(t)
	for name, edit := range map[string]func(p *Policy){
		"no Vigil version":  func(p *Policy) { p.VigilVersion = "" },
		"bad Vigil version": func(p *Policy) { p.VigilVersion = "v1" },
		"short key":         func(p *Policy) { p.Trusted = []ed25519.PublicKey{make([]byte, 31)} },
		"negative skew":     func(p *Policy) { p.Skew = -time.Second },
	} {
		p := f.pol
		edit(&p)
		err := verifyPath(f.dir, p, f.now)
		if err == nil || !strings.Contains(err.Error(), "policy") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
