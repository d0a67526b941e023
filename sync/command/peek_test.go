package command

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestPeek(t *testing.T) {
	f := newFixture(t, nil)
	signed := f.signed(t, nil)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name string
		raw  string
		want Unverified
		ok   bool
	}{
		{"signed", string(signed), Unverified{KeyID: f.keyID, Target: "veh-1", Command: LogLevel, CorrelationID: "c-1"}, true},
		{"unsigned", `{"v":1,"payload":"` + b64(`{"correlation_id":"c-2","command":"policy"}`) + `"}`, Unverified{Command: Policy, CorrelationID: "c-2"}, true},
		{"bare", `{"target":"veh-9","correlation_id":"c-3","issued_at_ms":1}`, Unverified{Target: "veh-9", CorrelationID: "c-3"}, true},
		{"other members of the wrong type", `{"v":1,"payload":"` + b64(`{"correlation_id":"c-4","issued_at_ms":"soon"}`) + `"}`, Unverified{CorrelationID: "c-4"}, true},
		{"too long an id", `{"correlation_id":"` + strings.Repeat("x", 300) + `","target":"v"}`, Unverified{Target: "v"}, true},
		{"not json", `hello`, Unverified{}, false},
		{"payload not json", `{"v":1,"payload":"` + b64(`hello`) + `"}`, Unverified{}, false},
		{"nothing claimed", `{"v":1}`, Unverified{}, false},
		{"empty", ``, Unverified{}, false},
		{"too large", `{"correlation_id":"x","pad":"` + strings.Repeat("x", maxRaw) + `"}`, Unverified{}, false},
	}
	for _, c := range cases {
		got, ok := Peek([]byte(c.raw))
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
