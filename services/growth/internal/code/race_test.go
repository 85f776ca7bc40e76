//go:build race

package code

// raceEnabled scales the volume test down under the race detector.
const raceEnabled = true
