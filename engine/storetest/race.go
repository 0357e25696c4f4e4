//go:build race

package storetest

// The race detector slows the stores' drivers about fifteenfold; the
// property test scales down under it.
const raceEnabled = true
