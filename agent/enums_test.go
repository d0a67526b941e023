package agent

import (
	"testing"

	"github.com/vigil-av/vigil/agent/wire"
	"github.com/vigil-av/vigil/inference"
)

// TestWireEnumsMatchInference: the service converts the inference
// package's reasons, outcomes and dtypes to the socket protocol's by
// number, so each pair must carry the same number (and the protocol's
// numbers never move: docs/protocol.md).
func TestWireEnumsMatchInference(t *testing.T) {
	reasons := []struct {
		in inference.Reason
		w  wire.Reason
	}{
		{inference.ReasonNone, wire.ReasonNone},
		{inference.ReasonMRM, wire.ReasonMRM},
		{inference.ReasonDeadlinePassed, wire.ReasonDeadlinePassedOnArrival},
		{inference.ReasonAllFailed, wire.ReasonAllBackendsFailed},
		{inference.ReasonDeadline, wire.ReasonDeadlineExceeded},
		{inference.ReasonOverloaded, wire.ReasonOverloaded},
		{inference.ReasonCancelled, wire.ReasonCancelled},
		{inference.ReasonClosed, wire.ReasonShuttingDown},
	}
	for _, r := range reasons {
		if wire.Reason(r.in) != r.w {
			t.Errorf("inference.%v is %d, wire.%v is %d", r.in, r.in, r.w, r.w)
		}
	}
	outcomes := []struct {
		in inference.Outcome
		w  wire.Outcome
	}{
		{inference.OutcomeNotPlanned, wire.OutcomeNotPlanned},
		{inference.OutcomeSkipped, wire.OutcomeSkipped},
		{inference.OutcomePending, wire.OutcomeRunning},
		{inference.OutcomeOK, wire.OutcomeOK},
		{inference.OutcomeInvalid, wire.OutcomeInvalidOutput},
		{inference.OutcomeFailed, wire.OutcomeError},
		{inference.OutcomeDeadline, wire.OutcomeDeadline},
		{inference.OutcomeBusy, wire.OutcomeBusy},
	}
	for _, o := range outcomes {
		if wire.Outcome(o.in) != o.w {
			t.Errorf("inference.%v is %d, wire.%v is %d", o.in, o.in, o.w, o.w)
		}
	}
	dtypes := []struct {
		in inference.DType
		w  wire.DType
	}{
		{inference.Float32, wire.Float32}, {inference.Uint8, wire.Uint8}, {inference.Int8, wire.Int8},
		{inference.Uint16, wire.Uint16}, {inference.Int16, wire.Int16}, {inference.Int32, wire.Int32},
		{inference.Int64, wire.Int64}, {inference.Bool, wire.Bool}, {inference.Float16, wire.Float16},
		{inference.Float64, wire.Float64}, {inference.Uint32, wire.Uint32}, {inference.Uint64, wire.Uint64},
		{inference.BFloat16, wire.BFloat16},
	}
	for _, d := range dtypes {
		if wire.DType(d.in) != d.w {
			t.Errorf("inference dtype %d and wire dtype %d differ", d.in, d.w)
		}
	}
}
