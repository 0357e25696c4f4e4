package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shared is the cluster of Shared. Starting a server takes about two
// seconds (initdb, mostly), too long to pay in every test of a package,
// while NewDatabase keeps tests on one server apart.
var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// mainCalled is set by Main; without it nothing would close the shared
// cluster and its directory would outlive the run.
var mainCalled atomic.Bool

// Shared returns the test binary's cluster, starting it on first use. The
// package's TestMain must hand over to Main, which closes it. If the
// server cannot be started, the test fails: a test that skipped here would
// count as passing on a machine that never ran it.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	if !mainCalled.Load() {
		tb.Fatal("pgtest.Shared needs the package's TestMain to call pgtest.Main(m), which closes the shared cluster")
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.cluster, shared.err = Start(ctx)
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.cluster
}

// Main runs the package's tests, closes the shared cluster if a test
// started it, and exits with the tests' status, or a failing one if the
// cluster could not be closed. Call it as the whole of TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with cleanup of its own to do after the
// tests: it returns the status to exit with instead of exiting.
func Run(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	if err := closeShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// closeShared also uses up the Once, so a goroutine a test leaked cannot
// start a new shared cluster that nobody would close.
func closeShared() error {
	shared.once.Do(func() { shared.err = errors.New("pgtest: the shared cluster is closed: the tests have finished") })
	if shared.cluster == nil {
		return nil
	}
	return shared.cluster.Close()
}
