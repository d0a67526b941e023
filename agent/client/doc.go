// Package client is the Go client of Vigil's socket protocol, for vehicle
// supervisors written in Go.
//
// It is written from docs/protocol.md alone and shares no code with the
// server (it does not import agent or agent/wire): the document is the
// contract, and this package is one of the two implementations that keep
// it honest.
//
//	c, err := client.Dial("/run/vigil/vigild.sock")
//	if err != nil {
//		return err // "vigild is not running: no socket at …", "permission denied on …"
//	}
//	defer c.Close()
//	ctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
//	defer cancel()
//	resp, err := c.Infer(ctx, &client.InferRequest{
//		FrameSeq: seq,
//		Inputs:   []client.Tensor{{Name: "frame", DType: client.Float32, Shape: []int64{1, 3, 66, 200}, Float32: pixels}},
//	})
//	switch {
//	case err != nil:          // no answer: the socket failed or ctx ended
//	case !resp.OK():          // NO_RESULT: resp.Reason says why; start the MRM
//	default:                  // resp.Outputs; resp.ServedBy tells which rung answered
//	}
//
// The request's deadline is the smaller of InferRequest.Budget and the time
// left on ctx; the server answers by it. A NO_RESULT answer is an answer,
// not an error: Infer returns it with a nil error.
//
// A Client is safe for concurrent use. Callers share one connection and
// their requests are pipelined: each is written as soon as it is made, and
// a goroutine owned by the Client reads the answers, which may come in any
// order, and hands each to its caller by request id.
//
// Drills (docs/drills.md): DrillRun starts one on the parked vehicle — a
// standard drill by name or a scenario file's YAML — and returns its
// report's id at once; DrillReport says whether the run is still going
// and, once it is over, returns the report's JSON (agent/drill's Report);
// Drills lists the standard drills and the reports the vehicle keeps. A
// refusal is a *ControlError (DRILLS_DISABLED, NOT_PARKED, BUSY,
// NOT_FOUND, INVALID_ARGUMENT naming the scenario's field).
package client
