package checkpoint

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// smallChain writes full, incremental, incremental, differential (with
// records appended before each) and returns the chain directory and the
// manifests.
func smallChain(t *testing.T) (string, []*Manifest) {
	t.Helper()
	root := t.TempDir()
	s := openStore(t, filepath.Join(root, "db"), nil)
	chain := filepath.Join(root, "chain")
	h := s.Stream(storage.StreamHealth)
	rng := rand.New(rand.NewPCG(1, 2))
	var ms []*Manifest
	for i, k := range []Kind{Full, Incremental, Incremental, Differential} {
		var last uint64
		for j := range 3000 {
			p := binary.BigEndian.AppendUint64(nil, uint64(i*10000+j))
			// 40 bytes that do not compress: the store's segments are
			// compressed, and the full must span several chunks.
			for range 5 {
				p = binary.BigEndian.AppendUint64(p, rng.Uint64())
			}
			last, _ = h.Append(p)
		}
		if err := h.WaitDurable(context.Background(), last); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, take(t, s, chain, k))
	}
	return chain, ms
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	// CopyFS makes files read-only like their source's mode; let tests edit.
	filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			os.Chmod(p, fi.Mode()|0o200)
		}
		return err
	})
}

func editManifest(t *testing.T, dir string, f func(*Manifest)) {
	t.Helper()
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func inflate(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func deflate(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, level)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// cutAtFrame rewrites the full checkpoint's chunks so that its stream ends
// at the last Badger frame boundary before its end, and checks that
// Badger's Load accepts the cut stream without complaint.
func cutAtFrame(t *testing.T, chain string, m *Manifest) string {
	t.Helper()
	dir := filepath.Join(chain, m.ID)
	var stream []byte
	var ends []int // where each chunk ends in the stream
	for _, c := range m.Chunks {
		b, err := os.ReadFile(filepath.Join(dir, c.Name))
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, inflate(t, b)...)
		ends = append(ends, len(stream))
	}
	var cut int // the last frame boundary before the end
	for off := 0; off < len(stream); {
		sz := int(binary.LittleEndian.Uint64(stream[off:]))
		if off+8+sz < len(stream) {
			cut = off + 8 + sz
		}
		off += 8 + sz
	}
	t.Logf("stream of %d bytes cut at %d", len(stream), cut)
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Load(bytes.NewReader(stream[:cut]), 16); err != nil {
		t.Errorf("Load of a stream cut at a frame boundary: %v (expected it to pass silently)", err)
	}
	db.Close()
	// The chunk holding the cut ends there; later ones go.
	start := 0
	for i, end := range ends {
		if cut <= end {
			name := m.Chunks[i].Name
			if err := os.WriteFile(filepath.Join(dir, name), deflate(t, stream[start:cut]), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, c := range m.Chunks[i+1:] {
				os.Remove(filepath.Join(dir, c.Name))
			}
			return name
		}
		start = end
	}
	t.Fatal("no cut")
	return ""
}

// explode rewrites every checkpoint under chain with a file per chunk, the
// layout an export writes, and removes the pack.
func explode(t *testing.T, chain string) {
	t.Helper()
	ms, err := List(chain)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		dir := filepath.Join(chain, m.ID)
		for i, c := range m.Chunks {
			b, err := manifest.ReadChunk(manifest.Dir(chain), m, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, c.Name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		os.Remove(filepath.Join(dir, manifest.PackName))
	}
}

func TestRestoreRefuses(t *testing.T) {
	chain, ms := smallChain(t)
	full, i1, i2, diff := ms[0], ms[1], ms[2], ms[3]
	if len(full.Chunks) < 2 {
		t.Fatalf("the full has %d chunks; the test wants several", len(full.Chunks))
	}
	cases := []struct {
		name  string
		at    string
		opts  RestoreOptions
		edit  func(t *testing.T, chain string) (target string)
		want  []string
		isErr error
		// pack keeps the chunks in the pack file Take writes; the other
		// cases edit chunk files of their own, the layout an export has.
		pack bool
	}{
		{name: "flipped bit in the pack", at: i1.ID, pack: true, edit: func(t *testing.T, c string) string {
			p := filepath.Join(c, full.ID, manifest.PackName)
			b, _ := os.ReadFile(p)
			b[manifest.Offset(full, 1)+10] ^= 0x10
			os.WriteFile(p, b, 0o644)
			return ""
		}, want: []string{full.ID, full.Chunks[1].Name, fmt.Sprintf("offset %d", manifest.Offset(full, 1)), "SHA-256"}, isErr: ErrChain},
		{name: "pack cut short", at: i1.ID, pack: true, edit: func(t *testing.T, c string) string {
			p := filepath.Join(c, full.ID, manifest.PackName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-100], 0o644)
			return ""
		}, want: []string{full.ID, full.Chunks[len(full.Chunks)-1].Name, "truncated"}, isErr: ErrChain},
		{name: "pack missing", at: i1.ID, pack: true, edit: func(t *testing.T, c string) string {
			os.Remove(filepath.Join(c, i1.ID, manifest.PackName))
			return ""
		}, want: []string{i1.ID, i1.Chunks[0].Name}, isErr: ErrChain},
		{name: "gap", at: i2.ID, edit: func(t *testing.T, c string) string {
			os.RemoveAll(filepath.Join(c, i1.ID))
			return ""
		}, want: []string{i2.ID, i1.ID, "gap"}, isErr: ErrChain},
		{name: "differential without its full", at: diff.ID, edit: func(t *testing.T, c string) string {
			os.RemoveAll(filepath.Join(c, full.ID))
			return ""
		}, want: []string{diff.ID, full.ID, "missing"}, isErr: ErrChain},
		{name: "mixed vehicles", at: i2.ID, edit: func(t *testing.T, c string) string {
			editManifest(t, filepath.Join(c, i1.ID), func(m *Manifest) { m.Vehicle = "veh-2" })
			return ""
		}, want: []string{i1.ID, "veh-2"}, isErr: ErrChain},
		{name: "mixed store ids", at: i2.ID, edit: func(t *testing.T, c string) string {
			editManifest(t, filepath.Join(c, i2.ID), func(m *Manifest) { m.StoreID = "00000000deadbeef" })
			return ""
		}, want: []string{i2.ID, i1.ID, "deadbeef"}, isErr: ErrChain},
		{name: "another vehicle than asked", opts: RestoreOptions{Vehicle: "veh-9"}, want: []string{"veh-1", "veh-9"}, isErr: ErrChain},
		{name: "unknown checkpoint", at: "000009-full", want: []string{"000009-full"}, isErr: ErrChain},
		{name: "flipped bit", at: i2.ID, edit: func(t *testing.T, c string) string {
			p := filepath.Join(c, full.ID, full.Chunks[1].Name)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x10
			os.WriteFile(p, b, 0o644)
			return ""
		}, want: []string{full.ID, full.Chunks[1].Name, "SHA-256"}, isErr: ErrChain},
		{name: "truncated chunk", at: i1.ID, edit: func(t *testing.T, c string) string {
			p := filepath.Join(c, i1.ID, i1.Chunks[0].Name)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-100], 0o644)
			return ""
		}, want: []string{i1.ID, i1.Chunks[0].Name, "truncated"}, isErr: ErrChain},
		{name: "missing chunk", at: i1.ID, edit: func(t *testing.T, c string) string {
			os.Remove(filepath.Join(c, full.ID, full.Chunks[len(full.Chunks)-1].Name))
			return ""
		}, want: []string{full.ID, full.Chunks[len(full.Chunks)-1].Name}, isErr: ErrChain},
		{name: "cut at a frame boundary", at: full.ID, edit: func(t *testing.T, c string) string {
			cutAtFrame(t, c, full)
			return ""
		}, want: []string{full.ID, "chunk-"}, isErr: ErrChain},
		{name: "counts disagree after load", at: i1.ID, edit: func(t *testing.T, c string) string {
			editManifest(t, filepath.Join(c, i1.ID), func(m *Manifest) {
				for i := range m.Streams {
					if m.Streams[i].Name == storage.StreamHealth {
						m.Streams[i].Count++
						m.Streams[i].Ranges[0].Last++
					}
				}
			})
			return ""
		}, want: []string{i1.ID, "stream health", "the manifest says"}, isErr: ErrChain},
		{name: "non-empty target", at: i1.ID, edit: func(t *testing.T, c string) string {
			target := filepath.Join(filepath.Dir(c), "target")
			os.MkdirAll(target, 0o755)
			os.WriteFile(filepath.Join(target, "precious"), []byte("keep"), 0o644)
			return target
		}, want: []string{"target", "not empty"}, isErr: ErrTargetNotEmpty},
		{name: "forced over a store, bad chunk", at: i1.ID, opts: RestoreOptions{Force: true}, edit: func(t *testing.T, c string) string {
			target := filepath.Join(filepath.Dir(c), "target")
			os.MkdirAll(target, 0o755)
			os.WriteFile(filepath.Join(target, "precious"), []byte("keep"), 0o644)
			p := filepath.Join(c, i1.ID, i1.Chunks[0].Name)
			b, _ := os.ReadFile(p)
			b[0] ^= 1
			os.WriteFile(p, b, 0o644)
			return target
		}, want: []string{i1.ID, i1.Chunks[0].Name}, isErr: ErrChain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			c := filepath.Join(root, "chain")
			copyTree(t, chain, c)
			if !tc.pack {
				explode(t, c)
			}
			var target string
			if tc.edit != nil {
				target = tc.edit(t, c)
			}
			pre := target != ""
			if !pre {
				target = filepath.Join(root, "target")
			}
			_, err := Restore(context.Background(), c, tc.at, target, tc.opts)
			if err == nil {
				t.Fatal("Restore succeeded")
			}
			t.Log(err)
			if !errors.Is(err, tc.isErr) {
				t.Errorf("error %v is not %v", err, tc.isErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			ents, _ := os.ReadDir(root)
			for _, e := range ents {
				if e.Name() != "chain" && e.Name() != "target" {
					t.Errorf("left behind: %s", e.Name())
				}
			}
			if !pre {
				if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("target directory exists after a failed restore: %v", err)
				}
			} else if b, err := os.ReadFile(filepath.Join(target, "precious")); err != nil || string(b) != "keep" {
				t.Errorf("the pre-existing target was touched: %q, %v", b, err)
			}
		})
	}
}

func TestRestoreForceMovesTheOldStoreAside(t *testing.T) {
	chain, ms := smallChain(t)
	root := t.TempDir()
	target := filepath.Join(root, "target")
	os.MkdirAll(target, 0o755)
	os.WriteFile(filepath.Join(target, "old"), []byte("old"), 0o644)
	if _, err := Restore(context.Background(), chain, "", target, RestoreOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(target+".before-restore-"+ms[3].ID, "old")); err != nil || string(b) != "old" {
		t.Errorf("old store not moved aside: %q, %v", b, err)
	}
	checkRestored(t, target, ms[3], 0, nil)
}
