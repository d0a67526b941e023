package bundlelink

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"testing/fstest"

	"github.com/vigil-av/vigil/models/bundle"
)

// TestLayout: each file is cut into chunks of its own, the last one
// shorter, an empty file into none; too many chunks are refused.
func TestLayout(t *testing.T) {
	b := makeBundle(t, "primary-v2", 2)
	spans, err := Layout(b.m, testChunk)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	perFile := map[int]int64{}
	for i, sp := range spans {
		f := b.m.Files[sp.File]
		if sp.Offset != perFile[sp.File] || sp.Size <= 0 || sp.Size > testChunk || sp.Offset+int64(sp.Size) > f.Size {
			t.Fatalf("span %d: %+v of %s (%d bytes)", i, sp, f.Path, f.Size)
		}
		perFile[sp.File] += int64(sp.Size)
		total += int64(sp.Size)
	}
	for i, f := range b.m.Files {
		if perFile[i] != f.Size {
			t.Errorf("%s: chunks cover %d of %d bytes", f.Path, perFile[i], f.Size)
		}
	}
	if total != Size(b.m) {
		t.Errorf("chunks cover %d bytes, the bundle has %d", total, Size(b.m))
	}
	big := *b.m
	big.Files = []bundle.File{{Path: "model.onnx", SHA256: hashA, Size: int64(MaxChunks+1) * MinChunkBytes}}
	if _, err := Layout(&big, MinChunkBytes); err == nil {
		t.Error("a bundle of more than MaxChunks chunks was cut")
	}
	if _, err := Layout(b.m, 1000); err == nil {
		t.Error("a chunk size that is no multiple of ChunkUnit was taken")
	}
}

// TestIndexRoundTrip: the fleet side's index parses on the vehicle, with
// the same manifest and chunk table, and is the same bytes every time.
func TestIndexRoundTrip(t *testing.T) {
	b := makeBundle(t, "primary-v2", 2)
	x := b.index(t, testChunk)
	doc, err := x.Encode()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := b.index(t, testChunk).Encode()
	if !bytes.Equal(doc, again) {
		t.Error("two indexes of the same bundle differ")
	}
	got, err := ParseIndex(doc, b.hash, testChunk)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := got.Manifest.Hash(); h != b.hash || len(got.Sums) != len(x.Sums) || got.Sums[3] != x.Sums[3] {
		t.Errorf("parsed index: hash %s, %d sums", h, len(got.Sums))
	}
}

// TestIndexRefusals: an index of another bundle, another chunk size, a
// manifest that is not the pinned one, a short chunk table, unknown
// fields or trailing data is refused.
func TestIndexRefusals(t *testing.T) {
	b := makeBundle(t, "primary-v2", 2)
	other := makeBundle(t, "primary-bad", 2)
	doc, _ := b.index(t, testChunk).Encode()
	otherDoc, _ := other.index(t, testChunk).Encode()
	edit := func(f func(d map[string]any)) []byte {
		var d map[string]any
		if err := json.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		f(d)
		out, _ := json.Marshal(d)
		return out
	}
	var od map[string]any
	json.Unmarshal(otherDoc, &od)
	for name, c := range map[string]struct {
		doc   []byte
		chunk int
	}{
		"another bundle's":       {otherDoc, testChunk},
		"another chunk size":     {doc, 2 * testChunk},
		"a manifest not pinned":  {edit(func(d map[string]any) { d["manifest"] = od["manifest"] }), testChunk},
		"a short chunk table":    {edit(func(d map[string]any) { d["chunks"] = "AAAA" }), testChunk},
		"an unknown field":       {edit(func(d map[string]any) { d["extra"] = 1 }), testChunk},
		"another format":         {edit(func(d map[string]any) { d["format"] = 2 }), testChunk},
		"data after it":          {append(bytes.Clone(doc), []byte(" {}")...), testChunk},
		"not JSON":               {[]byte("index"), testChunk},
		"a manifest that breaks": {edit(func(d map[string]any) { d["manifest"] = "e30=" }), testChunk},
	} {
		if _, err := ParseIndex(c.doc, b.hash, c.chunk); !errors.Is(err, ErrIndex) {
			t.Errorf("%s: %v, want ErrIndex", name, err)
		}
	}
}

// TestBuildIndexDamaged: a file whose bytes are not the manifest's is
// refused with ErrDamaged, naming it.
func TestBuildIndexDamaged(t *testing.T) {
	b := makeBundle(t, "primary-v2", 2)
	fsys := b.fsys()
	data := bytes.Clone(b.files["model.onnx"])
	data[1000] ^= 0x10
	fsys["model.onnx"] = &fstest.MapFile{Data: data}
	if _, err := BuildIndex(b.m, b.hash, fsys, testChunk); !errors.Is(err, ErrDamaged) || !bytes.Contains([]byte(err.Error()), []byte("model.onnx")) {
		t.Errorf("flipped byte: %v", err)
	}
	fsys["model.onnx"] = &fstest.MapFile{Data: append(bytes.Clone(b.files["model.onnx"]), 0)}
	if _, err := BuildIndex(b.m, b.hash, fsys, testChunk); !errors.Is(err, ErrDamaged) {
		t.Errorf("a byte too many: %v", err)
	}
}
