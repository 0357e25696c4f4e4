package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverUser is the system user Debian's postgresql package creates.
const serverUser = "postgres"

// account is who the server runs as. initdb and postgres refuse to run as
// root, and CI runs as root, so a root test binary runs them as
// serverUser; any other runs them as itself.
type account struct {
	cred *syscall.Credential // nil: the test binary's own user
}

func lookupAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return &account{}, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		return nil, fmt.Errorf("pgtest: PostgreSQL refuses to run as root and there is no %s user to run it as (Debian's postgresql package creates one): %w", serverUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of %s: %w", serverUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of %s: %w", serverUser, err)
	}
	// No supplementary groups: root's must not leak into the server, and
	// canReach then has only the primary group to consider.
	return &account{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}, nil
}

// runAs also asks the kernel to SIGKILL the process when the test binary
// dies, which is what keeps a panicking or timed-out test binary from
// leaving a server behind; the server's own children exit when it does.
func (a *account) runAs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: a.cred}
}

func (a *account) own(path string) error {
	if a.cred == nil {
		return nil
	}
	return os.Chown(path, int(a.cred.Uid), int(a.cred.Gid))
}

// canReach reports whether the account may search every directory from
// the root down to dir. A root test binary can create a directory where
// the server's account cannot reach it (a TMPDIR under /root, say); the
// server would then fail with a permission error far from the cause.
func (a *account) canReach(dir string) bool {
	if a.cred == nil {
		return true
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			return false
		}
		var search uint32
		switch {
		case st.Uid == a.cred.Uid:
			search = 0o100
		case st.Gid == a.cred.Gid:
			search = 0o010
		default:
			search = 0o001
		}
		if st.Mode&search == 0 {
			return false
		}
		if d == "/" || d == "." {
			return true
		}
	}
}

var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// startProcess starts cmd from an OS thread kept for that alone. The
// kernel sends Pdeathsig when the thread that started the child exits, not
// the process (go.dev/issue/27505), and Go ends a thread when a goroutine
// locked to it returns; a server started from an arbitrary thread could be
// killed in the middle of a test. This thread lives as long as the binary.
func startProcess(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread()
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd, done}
	return <-done
}

func signalShutdown(p *os.Process, mode shutdownMode) error {
	if mode == immediateShutdown {
		return p.Signal(syscall.SIGQUIT)
	}
	return p.Signal(syscall.SIGINT)
}

// killServer SIGKILLs the postmaster and every child it has, and waits
// until all are gone. Killing the postmaster alone would leave its children
// running until they notice, holding the shared memory a new server
// refuses to start beside. The postmaster is stopped first so it cannot
// fork a child between the listing of its children and the kill.
func killServer(p *os.Process, exited <-chan struct{}) error {
	if p.Signal(syscall.SIGSTOP) == nil {
		waitFor(time.Second, func() bool {
			s := processState(p.Pid)
			return s == 'T' || s == 'Z' || s == 0
		})
	}
	kids := children(p.Pid)
	for _, k := range kids {
		_ = syscall.Kill(k.pid, syscall.SIGKILL)
	}
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("postmaster %d still running 30s after SIGKILL", p.Pid)
	}
	for _, k := range kids {
		if !waitFor(30*time.Second, k.gone) {
			return fmt.Errorf("server process %d still running 30s after SIGKILL", k.pid)
		}
	}
	return nil
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// proc names one process; its start time tells it from a later process
// that was given the same pid.
type proc struct {
	pid   int
	start string
}

// gone reports whether the process has exited. A zombie has: it holds no
// memory, and whether anybody reaps it is up to init.
func (p proc) gone() bool {
	st, ok := readStat(p.pid)
	return !ok || st.state == 'Z' || st.start != p.start
}

// children lists the processes whose parent is pid.
func children(pid int) []proc {
	entries, _ := os.ReadDir("/proc")
	var kids []proc
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(n); ok && st.ppid == pid && st.state != 'Z' {
			kids = append(kids, proc{pid: n, start: st.start})
		}
	}
	return kids
}

func processExists(pid int) bool {
	s := processState(pid)
	return s != 0 && s != 'Z'
}

func processState(pid int) byte {
	st, _ := readStat(pid)
	return st.state
}

type stat struct {
	state byte
	ppid  int
	start string
}

// readStat reads /proc/pid/stat, whose second field, the command name in
// parentheses, may itself contain spaces and parentheses.
func readStat(pid int) (stat, bool) {
	if pid <= 0 {
		return stat{}, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(string(b[i+1:])) // from field 3, state, on
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return stat{}, false
	}
	return stat{state: f[0][0], ppid: ppid, start: f[19]}, true
}
