package command

import (
	"encoding/json"
	"unicode/utf8"
)

// Unverified is what a raw envelope claims about itself before any check:
// enough to answer a rejection with the issuer's correlation id and to
// log what was refused. None of it is to be trusted or acted on.
type Unverified struct {
	KeyID         string
	Target        string
	Command       Command
	CorrelationID string
}

// maxPeeked bounds each string Peek returns, so that a hostile payload
// cannot make a rejection's log line or response large.
const maxPeeked = 256

// Peek extracts what raw claims, leniently: the signed wrapper
// {"v","payload","sig"} or a bare envelope, unknown members ignored, no
// signature or shape checks. ok is false when nothing could be parsed.
// Strings longer than 256 bytes, or not UTF-8, come back empty.
func Peek(raw []byte) (Unverified, bool) {
	if len(raw) == 0 || len(raw) > maxRaw {
		return Unverified{}, false
	}
	var outer struct {
		Payload []byte `json:"payload"`
	}
	// Only the strings: a member of the wrong type elsewhere must not
	// hide the correlation id.
	var w struct {
		KeyID         string `json:"key_id"`
		Target        string `json:"target"`
		Command       string `json:"command"`
		CorrelationID string `json:"correlation_id"`
	}
	if err := json.Unmarshal(raw, &outer); err != nil {
		return Unverified{}, false
	}
	if len(outer.Payload) > 0 {
		if err := json.Unmarshal(outer.Payload, &w); err != nil {
			return Unverified{}, false
		}
	} else if err := json.Unmarshal(raw, &w); err != nil {
		return Unverified{}, false
	}
	u := Unverified{
		KeyID: clip(w.KeyID), Target: clip(w.Target), Command: Command(clip(w.Command)),
		CorrelationID: clip(w.CorrelationID),
	}
	return u, u != Unverified{}
}

func clip(s string) string {
	if len(s) > maxPeeked || !utf8.ValidString(s) {
		return ""
	}
	return s
}
