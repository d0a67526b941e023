package record

import (
	"encoding/binary"
	"fmt"
	"time"
)

// A request summary is the payload of each data record of the inference
// stream: the daemon's account of one answered request, fixed-size and
// little-endian, version 1:
//
//	0  u8  version (1)
//	1  u8  status (1 ok, 2 no_result)
//	2  u8  reason (inference.Reason; 8 invalid input)
//	3  u8  served by (0 primary, 1 shadow, 2 degraded, 255 none)
//	4  u64 frame sequence of the supervisor
//	12 u64 plan sequence
//	20 u32 latency, µs
//	24 3 × {u8 outcome, u32 start µs, u32 latency µs} for primary, shadow, degraded
//	51 end
//
// The numbers are inference's (Status, Reason, Outcome); they are kept as
// bytes here so that readers of telemetry need not link inference.
const (
	SummarySize    = 51
	SummaryVersion = 1
	// ServedByNone is Summary.ServedBy when no backend's answer was
	// served.
	ServedByNone = 255
	// ReasonInvalidInput is Summary.Reason for a request refused for
	// its inputs before any backend saw it.
	ReasonInvalidInput = 8
)

// Summary is a request summary, decoded. Durations are stored in whole
// microseconds.
type Summary struct {
	Status   uint8
	Reason   uint8
	ServedBy uint8
	FrameSeq uint64
	PlanSeq  uint64
	Latency  time.Duration
	Runs     [3]SummaryRun // primary, shadow, degraded
}

// SummaryRun is one backend's part in a request.
type SummaryRun struct {
	Outcome      uint8
	StartedAfter time.Duration // after the request arrived
	Latency      time.Duration
}

// Put writes s into b[:SummarySize]. It does not allocate.
func (s *Summary) Put(b []byte) {
	_ = b[SummarySize-1]
	b[0] = SummaryVersion
	b[1], b[2], b[3] = s.Status, s.Reason, s.ServedBy
	binary.LittleEndian.PutUint64(b[4:], s.FrameSeq)
	binary.LittleEndian.PutUint64(b[12:], s.PlanSeq)
	binary.LittleEndian.PutUint32(b[20:], uint32(s.Latency/time.Microsecond))
	for i, r := range s.Runs {
		o := 24 + 9*i
		b[o] = r.Outcome
		binary.LittleEndian.PutUint32(b[o+1:], uint32(r.StartedAfter/time.Microsecond))
		binary.LittleEndian.PutUint32(b[o+5:], uint32(r.Latency/time.Microsecond))
	}
}

// ParseSummary decodes a request summary. A payload of another size or
// version is an error wrapping ErrCorruptRecord.
func ParseSummary(b []byte) (Summary, error) {
	var s Summary
	if len(b) != SummarySize || b[0] != SummaryVersion {
		return s, fmt.Errorf("%w: not a version %d request summary of %d bytes", ErrCorruptRecord, SummaryVersion, SummarySize)
	}
	s.Status, s.Reason, s.ServedBy = b[1], b[2], b[3]
	s.FrameSeq = binary.LittleEndian.Uint64(b[4:])
	s.PlanSeq = binary.LittleEndian.Uint64(b[12:])
	s.Latency = time.Duration(binary.LittleEndian.Uint32(b[20:])) * time.Microsecond
	for i := range s.Runs {
		o := 24 + 9*i
		s.Runs[i] = SummaryRun{
			Outcome:      b[o],
			StartedAfter: time.Duration(binary.LittleEndian.Uint32(b[o+1:])) * time.Microsecond,
			Latency:      time.Duration(binary.LittleEndian.Uint32(b[o+5:])) * time.Microsecond,
		}
	}
	return s, nil
}
