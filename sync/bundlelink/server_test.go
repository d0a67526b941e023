package bundlelink

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// answers runs srv.Answer on a request and returns what it sent.
func answers(t *testing.T, srv *Server, req Envelope) []Envelope {
	t.Helper()
	raw, err := Encode(req)
	if err != nil {
		t.Fatal(err)
	}
	var out []Envelope
	srv.Answer(raw, func(e Envelope) error {
		b, err := Encode(e) // what goes on the wire
		if err != nil {
			t.Fatalf("the server sent an envelope that does not encode: %v", err)
		}
		d, err := Decode(b)
		if err != nil {
			t.Fatalf("the server sent an envelope that does not decode: %v", err)
		}
		out = append(out, d)
		return nil
	})
	return out
}

func wantRefused(t *testing.T, what string, got []Envelope, r Reason) {
	t.Helper()
	if len(got) != 1 || got[0].Type != TypeRefused || got[0].Reason() != r {
		t.Errorf("%s: answered %d envelopes (%v), want one refusal %s", what, len(got), types(got), r)
	}
}

func types(es []Envelope) []string {
	var s []string
	for _, e := range es {
		s = append(s, e.Type.String()+"/"+e.Reason().String())
	}
	return s
}

func newStoreServer(t *testing.T, dir string) (*Store, *Server) {
	t.Helper()
	store, err := OpenStore(dir, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := NewServer(ServerConfig{Broker: "tcp://127.0.0.1:1", Store: store, Log: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return store, srv
}

// TestServerAnswers: the fleet side answers the index and chunks of the
// bundle with the pinned hash, and refuses what it cannot answer;
// undecodable requests and answers posing as requests get nothing.
func TestServerAnswers(t *testing.T) {
	dir := t.TempDir()
	a := makeBundle(t, "primary-v2", 2)
	a.pack(t, dir, "a.tar")
	os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("not a tar"), 0o644)
	os.WriteFile(filepath.Join(dir, "readme.txt"), []byte("bundles go here"), 0o644)
	a.pack(t, dir, ".half-copied.tar")
	store, srv := newStoreServer(t, dir)
	if bs := store.Bundles(); len(bs) != 1 || bs[0].Hash != a.hash || bs[0].Name != "pilotnet" || !bs[0].Signed {
		t.Errorf("Bundles() = %+v", bs)
	}
	if p := store.Problems(); len(p) != 1 || p[filepath.Join(dir, "junk.tar")] == "" {
		t.Errorf("Problems() = %v", p)
	}

	parts := answers(t, srv, Envelope{Type: TypeGetIndex, Bundle: a.hash, ChunkBytes: MinChunkBytes, Count: MaxIndexParts})
	var doc []byte
	for k, p := range parts {
		if p.Type != TypeIndex || p.Index != k || p.Count != len(parts) {
			t.Fatalf("index part %d: %s %d of %d", k, p.Type, p.Index, p.Count)
		}
		doc = append(doc, p.Data...)
	}
	x, err := ParseIndex(doc, a.hash, MinChunkBytes)
	if err != nil || len(parts) < 2 {
		t.Fatalf("the index in %d parts: %v", len(parts), err)
	}
	got := answers(t, srv, Envelope{Type: TypeGetIndex, Bundle: a.hash, ChunkBytes: MinChunkBytes, Index: 1, Count: 1})
	if len(got) != 1 || !bytes.Equal(got[0].Data, parts[1].Data) {
		t.Errorf("part 1 alone: %v", types(got))
	}

	chunks := answers(t, srv, Envelope{Type: TypeGetChunks, Bundle: a.hash, ChunkBytes: MinChunkBytes, Index: 2, Count: 3})
	if len(chunks) != 3 {
		t.Fatalf("3 chunks asked for, %d answered", len(chunks))
	}
	for k, c := range chunks {
		if c.Type != TypeChunk || c.Index != 2+k || c.Count != len(x.Spans) || c.SHA256 != x.Sum(2+k) {
			t.Errorf("chunk %d: %s %d of %d, %s", 2+k, c.Type, c.Index, c.Count, c.SHA256)
		}
	}

	wantRefused(t, "beyond the last chunk", answers(t, srv, Envelope{Type: TypeGetChunks, Bundle: a.hash, ChunkBytes: MinChunkBytes, Index: len(x.Spans) - 1, Count: 2}), ReasonBadRequest)
	wantRefused(t, "beyond the last part", answers(t, srv, Envelope{Type: TypeGetIndex, Bundle: a.hash, ChunkBytes: MinChunkBytes, Index: len(parts), Count: 1}), ReasonBadRequest)
	wantRefused(t, "too many bytes at once", answers(t, srv, Envelope{Type: TypeGetChunks, Bundle: a.hash, ChunkBytes: MinChunkBytes, Count: MaxRequestBytes/MinChunkBytes + 1}), ReasonBadRequest)
	wantRefused(t, "an unknown hash", answers(t, srv, Envelope{Type: TypeGetIndex, Bundle: hashA, ChunkBytes: testChunk, Count: 1}), ReasonUnknownBundle)

	before := srv.Stats().BadRequest
	srv.Answer([]byte("VBDL garbage"), func(Envelope) error { t.Error("an undecodable request was answered"); return nil })
	raw, _ := Encode(validChunk())
	srv.Answer(raw, func(Envelope) error { t.Error("a chunk was answered as a request"); return nil })
	if st := srv.Stats(); st.BadRequest != before+2 || st.RefusedBy["bad-request"] != 3 || st.RefusedBy["unknown-bundle"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestServerSameNameOtherBundle: a file replaced by another bundle under
// the same name is the other bundle: the old hash is refused, never
// answered with the new bundle's bytes.
func TestServerSameNameOtherBundle(t *testing.T) {
	dir := t.TempDir()
	a, b := makeBundle(t, "primary-v2", 2), makeBundle(t, "primary-bad", 2)
	a.pack(t, dir, "pilotnet.tar")
	_, srv := newStoreServer(t, dir)
	if got := answers(t, srv, Envelope{Type: TypeGetChunks, Bundle: a.hash, ChunkBytes: testChunk, Count: 1}); len(got) != 1 || got[0].SHA256 != a.index(t, testChunk).Sum(0) {
		t.Fatalf("a's chunk 0: %v", types(got))
	}
	b.pack(t, dir, "pilotnet.tar")
	wantRefused(t, "a's hash after b replaced it", answers(t, srv, Envelope{Type: TypeGetChunks, Bundle: a.hash, ChunkBytes: testChunk, Count: 1}), ReasonUnknownBundle)
	if got := answers(t, srv, Envelope{Type: TypeGetChunks, Bundle: b.hash, ChunkBytes: testChunk, Count: 1}); len(got) != 1 || got[0].SHA256 != b.index(t, testChunk).Sum(0) {
		t.Errorf("b's chunk 0: %v", types(got))
	}
}

// TestServerDamagedBundle: a bundle whose file does not match its
// manifest in the store is not served (unavailable), and the refusal
// says why.
func TestServerDamagedBundle(t *testing.T) {
	dir := t.TempDir()
	a := makeBundle(t, "primary-v2", 2)
	path := a.pack(t, dir, "a.tar")
	raw, _ := os.ReadFile(path)
	at := bytes.Index(raw, a.files["model.onnx"][5000:5064])
	raw[at] ^= 1
	os.WriteFile(path, raw, 0o644)
	_, srv := newStoreServer(t, dir)
	got := answers(t, srv, Envelope{Type: TypeGetIndex, Bundle: a.hash, ChunkBytes: testChunk, Count: 1})
	wantRefused(t, "a damaged bundle", got, ReasonUnavailable)
	if len(got) == 1 && !strings.Contains(string(got[0].Data), "model.onnx") {
		t.Errorf("the refusal %q does not name the file", got[0].Data)
	}
}

func TestServerConfigRefusals(t *testing.T) {
	store, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for name, cfg := range map[string]ServerConfig{
		"no broker": {Store: store},
		"no store":  {Broker: "tcp://localhost:1883"},
		"bad group": {Broker: "tcp://localhost:1883", Store: store, Group: "a/b"},
	} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := OpenStore(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("OpenStore of a missing directory succeeded")
	}
}

// TestRefusalDetailClipped: a refusal's detail longer than MaxDetailBytes
// is cut at a character's start, so that the refusal still encodes.
func TestRefusalDetailClipped(t *testing.T) {
	for _, detail := range []string{strings.Repeat("é", MaxDetailBytes), strings.Repeat("x", 3*MaxDetailBytes), "bad \xff byte"} {
		d := clip(detail)
		if _, err := Encode(Envelope{Type: TypeRefused, Bundle: hashA, ChunkBytes: testChunk, Index: int(ReasonUnavailable), Data: d}); err != nil {
			t.Errorf("a detail of %d bytes, clipped to %d: %v", len(detail), len(d), err)
		}
		if len(detail) > MaxDetailBytes && len(d) < MaxDetailBytes-4 {
			t.Errorf("a detail of %d bytes clipped to %d", len(detail), len(d))
		}
	}
}
