package main

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/sync/batch"
	"github.com/vigil-av/vigil/sync/sink"
)

// checkSink verifies that the sink holds every durable record of every
// stream of the store exactly once, under the store's incarnation id
// (<root>/<vehicle>/<store id in hex>/<stream>/): it reads every record
// as stored (sink.Scan: the sink's own reads de-duplicate, which would
// hide a record stored twice), counts each seq, and compares the data
// records with what was appended. It returns the records checked.
func checkSink(sk *sink.Sink, sinkDir, vehicle string, store *storage.Store, liveStream string, live map[uint64][]byte) (uint64, error) {
	var total uint64
	reports := map[string]sink.StreamReport{}
	for _, v := range sk.Report().Vehicles {
		if v.Vehicle != vehicle {
			continue
		}
		for _, s := range v.Streams {
			if s.Store != store.StoreID() {
				return total, fmt.Errorf("the sink holds %s's stream %s of store %016x; the vehicle's store is %016x", vehicle, s.Stream, s.Store, store.StoreID())
			}
			reports[s.Stream] = s
		}
	}
	want := make([]byte, summaryBytes)
	for _, ss := range store.Stats().Streams {
		if ss.Durable == 0 {
			continue
		}
		if ss.Cursor != ss.Durable {
			return total, fmt.Errorf("%s: cursor %d, durable %d", ss.Name, ss.Cursor, ss.Durable)
		}
		rep := reports[ss.Name]
		if rep.Records != ss.Durable || rep.HighWater != ss.Durable || len(rep.Missing) > 0 {
			return total, fmt.Errorf("%s: sink reports %d records through %d, missing %v; %d durable", ss.Name, rep.Records, rep.HighWater, rep.Missing, ss.Durable)
		}
		seen := make([]uint8, ss.Durable+1)
		err := sk.Scan(vehicle, store.StoreID(), ss.Name, func(r batch.Record) error {
			if r.Seq == 0 || r.Seq > ss.Durable {
				return fmt.Errorf("%s: seq %d stored, only %d durable", ss.Name, r.Seq, ss.Durable)
			}
			if seen[r.Seq]++; seen[r.Seq] > 1 {
				return fmt.Errorf("%s/%d stored more than once", ss.Name, r.Seq)
			}
			if r.Kind != storage.KindData {
				return nil
			}
			exp, ok := []byte(nil), false
			if ss.Name == liveStream {
				exp, ok = live[r.Seq]
			}
			if !ok {
				summary(want, r.Seq)
				exp = want
			}
			if !bytes.Equal(r.Payload, exp) {
				return fmt.Errorf("%s/%d: payload %x, appended %x", ss.Name, r.Seq, r.Payload, exp)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if i := slices.Index(seen[1:], 0); i >= 0 {
			return total, fmt.Errorf("%s/%d missing from the sink", ss.Name, i+1)
		}
		total += ss.Durable
	}
	return total, nil
}
