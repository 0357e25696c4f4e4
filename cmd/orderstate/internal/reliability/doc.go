// Package reliability holds the tests that run the real orderstate binary
// as a subprocess: SIGKILL at random moments and restart on the same file
// (TestCrashDurability, `make crash`), a store that is locked, full or
// read-only, SIGTERM under load, and a scan of a debug-level log for
// secrets. It has no code of its own.
package reliability
