package ckptlink

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
)

func validEnv() Envelope {
	data := []byte("chunk bytes")
	sum := sha256.Sum256(data)
	return Envelope{Type: TypeChunk, Vehicle: "veh-1", Store: "00112233aabbccdd", ID: "000002-incremental", Index: 1, Count: 3, SHA256: hex.EncodeToString(sum[:]), Data: data}
}

func TestEnvelopeRoundTripAndRefusals(t *testing.T) {
	raw, err := Encode(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(raw)
	if err != nil || got.ID != "000002-incremental" || got.Store != "00112233aabbccdd" || got.Index != 1 || got.Count != 3 || !bytes.Equal(got.Data, []byte("chunk bytes")) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, f := range map[string]func(*Envelope){
		"bad id":          func(e *Envelope) { e.ID = "../etc" },
		"bad vehicle":     func(e *Envelope) { e.Vehicle = "a/b" },
		"index >= count":  func(e *Envelope) { e.Index = 3 },
		"empty data":      func(e *Envelope) { e.Data = nil },
		"too many parts":  func(e *Envelope) { e.Type, e.Count, e.Index = TypeManifest, MaxParts+1, 0 },
		"bad store":       func(e *Envelope) { e.Store = "xyz" },
		"oversize chunk":  func(e *Envelope) { e.Data = make([]byte, MaxPartBytes+1) },
		"unknown type":    func(e *Envelope) { e.Type = 9 },
		"hash not sha256": func(e *Envelope) { e.SHA256 = "abc" },
	} {
		e := validEnv()
		f(&e)
		if _, err := Encode(e); !errors.Is(err, ErrEnvelope) {
			t.Errorf("%s: Encode gave %v", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"truncated":   raw[:len(raw)-1],
		"trailing":    append(bytes.Clone(raw), 0),
		"bad magic":   append([]byte("XCKP"), raw[4:]...),
		"bad version": append(append([]byte(Magic), 2), raw[5:]...),
		"empty":       {},
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
	if n := MaxMessageBytes; n > 128<<10 {
		t.Errorf("an envelope may take %d bytes, over the 128 KiB payload limit", n)
	}
}

func TestAckRoundTrip(t *testing.T) {
	a := Ack{Vehicle: "veh-1", Store: "00112233aabbccdd", ID: "000001-full", Type: "manifest", Status: Missing, Missing: ranges([]int{1, 2, 3, 7})}
	b, err := EncodeAck(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAck(b)
	if err != nil || len(got.Missing) != 2 || got.Missing[1] != (Range{7, 7}) {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, bad := range []string{`{"format":1,"vehicle":"v","status":"nope"}`, `{"format":2,"vehicle":"v","status":"refused"}`, `{"format":1,"vehicle":"v","status":"refused","x":1}`} {
		if _, err := DecodeAck([]byte(bad)); !errors.Is(err, ErrAck) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	raw, _ := Encode(validEnv())
	f.Add(raw)
	e := validEnv()
	e.Type, e.Count, e.Index = TypeManifest, 2, 1
	raw, _ = Encode(e)
	f.Add(raw)
	f.Add([]byte(Magic))
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
