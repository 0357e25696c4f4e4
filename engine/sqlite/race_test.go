//go:build race

package sqlite_test

// The race detector slows the SQLite driver about fifteenfold; tests that
// run many ingests scale down under it. The pure state machine property test
// runs in full either way.
const raceEnabled = true
