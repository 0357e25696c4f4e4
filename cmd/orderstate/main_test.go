package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/orderstate/orderstate/engine/postgres/pgtest"
)

func TestMain(m *testing.M) {
	// A full run builds the binary first, so that the build's minute of
	// CPU does not land in the middle of the timing-sensitive tests
	// (TestSlowClients_*) that run beside the tests that need it.
	flag.Parse()
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" && !testing.Short() {
		buildBinary()
	}
	code := pgtest.Run(m)
	if msg := openAPICoverage(); msg != "" && code == 0 {
		fmt.Fprintln(os.Stderr, msg)
		code = 1
	}
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// testVersion is what the built binary's version is set to.
const testVersion = "v0.0.0-test+abc"

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// binary builds cmd/orderstate once per test run the way the Dockerfile
// does: static (CGO_ENABLED=0), with the version set through -ldflags;
// without -trimpath, so that it shares its compiled packages with the
// reliability tests' build, which differs only in what is linked.
func binary(t testing.TB) string {
	t.Helper()
	buildBinary()
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

func buildBinary() {
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "orderstate-cmd-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "orderstate")
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goBin, "build", "-ldflags", "-s -w -X main.Version="+testVersion, "-o", built.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
}
