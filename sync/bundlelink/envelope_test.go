package bundlelink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

var hashA = strings.Repeat("ab", 32)

func validChunk() Envelope {
	data := []byte("chunk bytes")
	return Envelope{Type: TypeChunk, Bundle: hashA, ChunkBytes: testChunk, Index: 1, Count: 3, SHA256: sha256Hex(data), Data: data}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []Envelope{
		validChunk(),
		{Type: TypeGetIndex, Bundle: hashA, ChunkBytes: MaxChunkBytes, Index: 0, Count: MaxIndexParts},
		{Type: TypeGetChunks, Tag: 0xfeedf00d, Bundle: hashA, ChunkBytes: MinChunkBytes, Index: 7, Count: 2},
		{Type: TypeIndex, Bundle: hashA, ChunkBytes: testChunk, Index: 0, Count: 1, SHA256: sha256Hex([]byte("doc")), Data: []byte("{}")},
		{Type: TypeRefused, Bundle: hashA, ChunkBytes: testChunk, Index: int(ReasonUnknownBundle), Data: []byte("no such bundle")},
		{Type: TypeRefused, Bundle: hashA, ChunkBytes: testChunk, Index: int(ReasonUnavailable)},
	} {
		raw, err := Encode(e)
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		got, err := Decode(raw)
		if err != nil || got.Type != e.Type || got.Tag != e.Tag || got.Bundle != e.Bundle || got.ChunkBytes != e.ChunkBytes || got.Index != e.Index ||
			got.Count != e.Count || got.SHA256 != e.SHA256 || !bytes.Equal(got.Data, e.Data) {
			t.Errorf("%s: round trip gave %+v, %v", e.Type, got, err)
		}
	}
	if MaxMessageBytes > 128<<10 {
		t.Errorf("an envelope may take %d bytes, over the 128 KiB payload limit", MaxMessageBytes)
	}
}

// TestEnvelopeRefusals: Encode and Decode refuse every malformed
// envelope with ErrEnvelope.
func TestEnvelopeRefusals(t *testing.T) {
	for name, f := range map[string]func(*Envelope){
		"bad hash":                func(e *Envelope) { e.Bundle = "ABCD" },
		"upper-case hash":         func(e *Envelope) { e.Bundle = strings.ToUpper(hashA) },
		"chunk size not a unit":   func(e *Envelope) { e.ChunkBytes = testChunk + 1 },
		"chunk size too large":    func(e *Envelope) { e.ChunkBytes = MaxChunkBytes + ChunkUnit },
		"chunk size zero":         func(e *Envelope) { e.ChunkBytes = 0 },
		"index >= count":          func(e *Envelope) { e.Index = 3 },
		"negative index":          func(e *Envelope) { e.Index = -1 },
		"too many chunks":         func(e *Envelope) { e.Count = MaxChunks + 1 },
		"empty data":              func(e *Envelope) { e.Data = nil },
		"data over chunk size":    func(e *Envelope) { e.Data = make([]byte, testChunk+1); e.SHA256 = sha256Hex(e.Data) },
		"no hash on chunk":        func(e *Envelope) { e.SHA256 = "" },
		"unknown type":            func(e *Envelope) { e.Type = 9 },
		"request with a hash":     func(e *Envelope) { e.Type, e.Data = TypeGetChunks, nil },
		"request beyond the end":  func(e *Envelope) { e.Type, e.SHA256, e.Data, e.Index, e.Count = TypeGetChunks, "", nil, MaxChunks-1, 2 },
		"request of nothing":      func(e *Envelope) { e.Type, e.SHA256, e.Data, e.Count = TypeGetChunks, "", nil, 0 },
		"request with zeros":      func(e *Envelope) { e.Type, e.SHA256, e.Data = TypeGetChunks, "", make([]byte, 8) },
		"request with data":       func(e *Envelope) { e.Type, e.SHA256, e.Data = TypeGetChunks, "", []byte{0, 1} },
		"index request with data": func(e *Envelope) { e.Type, e.SHA256, e.Index, e.Count, e.Data = TypeGetIndex, "", 0, 1, []byte{0} },
		"too many index parts":    func(e *Envelope) { e.Type, e.Count, e.Index = TypeIndex, MaxIndexParts+1, 0 },
		"refusal without reason":  func(e *Envelope) { e.Type, e.SHA256, e.Index, e.Count = TypeRefused, "", 0, 0 },
		"refusal with a count":    func(e *Envelope) { e.Type, e.SHA256, e.Index, e.Count = TypeRefused, "", 1, 1 },
		"refusal not UTF-8":       func(e *Envelope) { e.Type, e.SHA256, e.Index, e.Count, e.Data = TypeRefused, "", 1, 0, []byte{0xff} },
	} {
		e := validChunk()
		f(&e)
		if _, err := Encode(e); !errors.Is(err, ErrEnvelope) {
			t.Errorf("%s: Encode gave %v", name, err)
		}
	}
	raw, _ := Encode(validChunk())
	req, _ := Encode(Envelope{Type: TypeGetChunks, Bundle: hashA, ChunkBytes: testChunk, Count: 1})
	reqWithSum := bytes.Clone(req)
	reqWithSum[60] = 1 // in the SHA-256
	// A padded request as this package once sent: the length says so.
	reqPadded := append(bytes.Clone(req), make([]byte, 8)...)
	binary.BigEndian.PutUint32(reqPadded[HeaderBytes-4:], 8)
	for name, b := range map[string][]byte{
		"truncated":          raw[:len(raw)-1],
		"trailing":           append(bytes.Clone(raw), 0),
		"bad magic":          append([]byte("XBDL"), raw[4:]...),
		"bad version":        append(append([]byte(Magic), 2), raw[5:]...),
		"header only":        raw[:HeaderBytes-1],
		"empty":              {},
		"oversize":           make([]byte, MaxMessageBytes+1),
		"a request with sum": reqWithSum,
		"a padded request":   reqPadded,
	} {
		if _, err := Decode(b); !errors.Is(err, ErrEnvelope) {
			t.Errorf("%s: Decode gave %v", name, err)
		}
	}
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	if e, err := Decode(flipped); !errors.Is(err, ErrHash) || e.Index != 1 {
		t.Errorf("flipped bit: %+v, %v; want ErrHash naming chunk 1", e, err)
	}
}

func TestTopics(t *testing.T) {
	if v, ok := VehicleFromTopic(RequestTopic("veh-1")); !ok || v != "veh-1" {
		t.Errorf("VehicleFromTopic(%s) = %q, %v", RequestTopic("veh-1"), v, ok)
	}
	for _, bad := range []string{DataTopic("veh-1"), "vigil/v1/a+b/bundles/req", "vigil/v2/veh-1/bundles/req", "vigil/v1/veh-1/bundles/req/x"} {
		if _, ok := VehicleFromTopic(bad); ok {
			t.Errorf("VehicleFromTopic(%q) accepted it", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	raw, _ := Encode(validChunk())
	f.Add(raw)
	for _, e := range []Envelope{
		{Type: TypeGetChunks, Bundle: hashA, ChunkBytes: testChunk, Index: 3, Count: 2},
		{Type: TypeGetIndex, Bundle: hashA, ChunkBytes: testChunk, Index: 0, Count: MaxIndexParts},
		{Type: TypeIndex, Bundle: hashA, ChunkBytes: testChunk, Index: 1, Count: 2, SHA256: hashA, Data: []byte("part")},
		{Type: TypeRefused, Bundle: hashA, ChunkBytes: testChunk, Index: 2, Data: []byte("why")},
	} {
		raw, _ := Encode(e)
		f.Add(raw)
	}
	f.Add([]byte(Magic))
	padded, _ := Encode(Envelope{Type: TypeGetChunks, Bundle: hashA, ChunkBytes: testChunk, Index: 3, Count: 2})
	padded = append(padded, make([]byte, 8)...)
	binary.BigEndian.PutUint32(padded[HeaderBytes-4:], 8)
	f.Add(padded) // refused: a request carries no data
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(e)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", e, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
