package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/inference"
)

// enum is what the pairs below are made of: the router's enumerations and
// the protocol's.
type enum interface {
	~uint8 | ~uint16
	fmt.Stringer
}

// pair is a value of the router's and the protocol's value for it.
type pair[I, W enum] struct {
	in I
	w  W
}

// TestWireEnumsMatchInference: the service converts the router's statuses,
// reasons, outcomes and dtypes to the socket protocol's by type conversion
// (wire.Reason(ans.Reason)), which is right only while each value of the
// router has the number of its counterpart on the wire. The tables below
// say which is which; every value either package names must be in them,
// and each pair must carry one number (the protocol's numbers never move:
// docs/protocol.md, checked by agent/wire's TestCodesMatchProtocolDoc).
func TestWireEnumsMatchInference(t *testing.T) {
	checkPairs(t, "status", []pair[inference.Status, wire.Status]{
		{inference.StatusOK, wire.StatusOK},
		{inference.StatusNoResult, wire.StatusNoResult},
	}, named[inference.Status]("status"), named[wire.Status]("status"))

	// INVALID_INPUT and INTERNAL are the agent's own: the router's only
	// error is a bad request, and the connection answers for a daemon that
	// failed on one.
	checkPairs(t, "reason", []pair[inference.Reason, wire.Reason]{
		{inference.ReasonNone, wire.ReasonNone},
		{inference.ReasonMRM, wire.ReasonMRM},
		{inference.ReasonDeadlinePassed, wire.ReasonDeadlinePassedOnArrival},
		{inference.ReasonAllFailed, wire.ReasonAllBackendsFailed},
		{inference.ReasonDeadline, wire.ReasonDeadlineExceeded},
		{inference.ReasonOverloaded, wire.ReasonOverloaded},
		{inference.ReasonCancelled, wire.ReasonCancelled},
		{inference.ReasonClosed, wire.ReasonShuttingDown},
	}, named[inference.Reason]("reason"), named[wire.Reason]("reason"), wire.ReasonInvalidInput, wire.ReasonInternal)

	checkPairs(t, "outcome", []pair[inference.Outcome, wire.Outcome]{
		{inference.OutcomeNotPlanned, wire.OutcomeNotPlanned},
		{inference.OutcomeSkipped, wire.OutcomeSkipped},
		{inference.OutcomePending, wire.OutcomeRunning},
		{inference.OutcomeOK, wire.OutcomeOK},
		{inference.OutcomeInvalid, wire.OutcomeInvalidOutput},
		{inference.OutcomeFailed, wire.OutcomeError},
		{inference.OutcomeDeadline, wire.OutcomeDeadline},
		{inference.OutcomeBusy, wire.OutcomeBusy},
	}, named[inference.Outcome]("outcome"), named[wire.Outcome]("outcome"))

	// inference.DTypeUnset (0, taken as float32) is not on the wire: the
	// service sends such an output as float32.
	checkPairs(t, "dtype", []pair[inference.DType, wire.DType]{
		{inference.Float32, wire.Float32}, {inference.Uint8, wire.Uint8}, {inference.Int8, wire.Int8},
		{inference.Uint16, wire.Uint16}, {inference.Int16, wire.Int16}, {inference.Int32, wire.Int32},
		{inference.Int64, wire.Int64}, {inference.Bool, wire.Bool}, {inference.Float16, wire.Float16},
		{inference.Float64, wire.Float64}, {inference.Uint32, wire.Uint32}, {inference.Uint64, wire.Uint64},
		{inference.BFloat16, wire.BFloat16},
	}, func(d inference.DType) bool { return d != inference.DTypeUnset && d.Size() != 0 }, named[wire.DType]("dtype"))
}

// named reports whether a value has a name of its own, rather than the
// String method's fallback, prefix(N).
func named[E enum](prefix string) func(E) bool {
	return func(v E) bool { return !strings.HasPrefix(v.String(), prefix+"(") }
}

// checkPairs checks that each pair carries one number, that every value
// inNamed accepts is the router's side of one pair, and that every value
// wireNamed accepts is the wire's side of one, or one of wireOnly.
func checkPairs[I, W enum](t *testing.T, what string, pairs []pair[I, W], inNamed func(I) bool, wireNamed func(W) bool, wireOnly ...W) {
	t.Helper()
	ins, ws := map[uint64]bool{}, map[uint64]bool{}
	for _, p := range pairs {
		if uint64(p.in) != uint64(p.w) {
			t.Errorf("%s: inference's %v is %d, the wire's %v is %d: %T(%d) would say %v", what, p.in, p.in, p.w, p.w, p.w, p.in, W(p.in))
		}
		ins[uint64(p.in)], ws[uint64(p.w)] = true, true
	}
	for _, w := range wireOnly {
		ws[uint64(w)] = true
	}
	for v := range uint64(1 << 16) {
		if in := I(v); uint64(in) == v && inNamed(in) && !ins[v] {
			t.Errorf("%s: inference's %v (%d) has no counterpart on the wire in this test", what, in, v)
		}
		if w := W(v); uint64(w) == v && wireNamed(w) && !ws[v] {
			t.Errorf("%s: the wire's %v (%d) has no counterpart in inference in this test", what, w, v)
		}
	}
}
