package socket

import (
	"context"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/agent/wire"
)

// DrillHandler is what a Handler implements to answer DRILL_REQUEST
// (docs/protocol.md): the drills' list, runs and reports. A Handler
// without it answers every DRILL_REQUEST with ERROR UNSUPPORTED_TYPE.
type DrillHandler interface {
	// Drill answers one DRILL_REQUEST. query is the request's payload,
	// UTF-8 of at most wire.MaxDrillRequest bytes, valid only until Drill
	// returns; the answer is DRILL_RESPONSE's JSON (a wire.DrillAnswer),
	// refusals included. Drill must not block for long: a run is started
	// and answered at once.
	Drill(ctx context.Context, peer Peer, query []byte) []byte
}

const detailNoDrills = "this daemon does not run drills"

func (c *conn) serveDrill(sl *slot) (m wire.Message) {
	var req wire.DrillRequest
	if err := req.DecodePayload(sl.payload); err != nil {
		return sl.errorFrame(wire.CodeInvalidRequest, err.Error())
	}
	h, ok := c.s.h.(DrillHandler)
	if !ok {
		return sl.errorFrame(wire.CodeUnsupportedType, detailNoDrills)
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("drill handler panicked", zap.Any("panic", r), zap.Stack("stack"))
			m = sl.errorFrame(wire.CodeInternal, "the daemon failed on this drill request")
		}
	}()
	return &wire.DrillResponse{JSON: h.Drill(c.ctx, c.peer, req.JSON)}
}
