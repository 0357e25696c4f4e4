//go:build !linux

package pgtest

import (
	"errors"
	"os"
	"os/exec"
)

// The package builds everywhere so that `go vet ./...` and `go test ./...`
// do, but starts servers only on Linux: elsewhere nothing kills the server
// with a test binary that dies, and nothing lists its processes.
var errUnsupported = errors.New("pgtest: starting PostgreSQL for tests is implemented for Linux only")

type account struct{}

func lookupAccount() (*account, error) { return nil, errUnsupported }

func (*account) runAs(*exec.Cmd) {}

func (*account) own(string) error { return errUnsupported }

func (*account) canReach(string) bool { return false }

func startProcess(*exec.Cmd) error { return errUnsupported }

func signalShutdown(p *os.Process, _ shutdownMode) error { return p.Kill() }

func killServer(p *os.Process, exited <-chan struct{}) error {
	err := p.Kill()
	<-exited
	return err
}

// processExists cannot tell here, and removeAbandoned must then keep
// every directory.
func processExists(int) bool { return true }

type proc struct{ pid int }

func (proc) gone() bool { return true }

func children(int) []proc { return nil }
