//go:build race

package inference_test

// raceEnabled: under the race detector runs take several times longer
// on a small machine; deadline promises are checked without it.
const raceEnabled = true
