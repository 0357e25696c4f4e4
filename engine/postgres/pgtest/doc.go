// Package pgtest starts real, throwaway PostgreSQL servers for Go tests, so
// the PostgreSQL store is tested against the server it will run on rather
// than a mock, and `make test` does so on a fresh machine with nothing
// skipped. It needs only the server binaries (Debian: apt-get install
// postgresql); it never touches a system cluster, and a missing
// installation is a test failure, never a skip, so a machine that cannot
// run these tests cannot report them as passing.
//
// A cluster lives in its own temporary directory, listens on 127.0.0.1 on
// a port of its own, trusts every local connection, and keeps PostgreSQL's
// default durability (fsync and synchronous_commit on), so what a
// benchmark measures against it is a real ceiling. Its server log is
// postgres.log in that directory.
//
// Most tests share one cluster per test binary and take a fresh database
// each:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.Shared(t).NewDatabase(t)
//		...
//	}
//
// Tests that stop, kill or restart the server start a cluster of their own
// with Start and close it with t.Cleanup, so they never pull the shared one
// from under other tests.
//
// Only Linux is supported: that is where the server is killed with the test
// binary even when the binary dies without cleaning up (see Close). On other
// systems Start returns an error, which fails the tests that need it.
package pgtest
