//go:build race

package agent

// raceEnabled: under the race detector the daemon, the broker's clients
// and the test share two cores at a tenth of their speed; timing
// promises are checked without it.
const raceEnabled = true
