//go:build race

package sink

// raceEnabled: the race detector slows the day's worth of batches of
// TestFleetDayFiles twentyfold.
const raceEnabled = true
