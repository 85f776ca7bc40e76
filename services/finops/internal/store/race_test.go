//go:build race

package store_test

// raceEnabled scales the volume tests down under the race detector, which
// slows the pure-Go SQLite about twentyfold; the plans they check stay the
// same.
const raceEnabled = true
