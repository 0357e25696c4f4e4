package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is what Start returns, unwrapped and as the whole
// message, when no PostgreSQL server binaries are found: the one line a
// failing test prints has to tell a newcomer what to install.
var ErrNotInstalled = errors.New("PostgreSQL server binaries not found: install Debian's postgresql package (apt-get install postgresql)")

const (
	// startTimeout bounds waiting for the server to accept connections when
	// the caller's context has no deadline. Crash recovery after Kill and a
	// loaded 2-core CI machine both take far less; a server that is not up
	// by then is broken and its log says why.
	startTimeout = time.Minute
	// stopTimeout bounds a shutdown before it is escalated to killing
	// every server process, so Stop and Close cannot hang a test binary.
	stopTimeout = time.Minute
	// maxConnections leaves room for several replicas' pools, plus the
	// connections tests open themselves, on one cluster.
	maxConnections = 200
	// superuser is the role initdb creates; trust authentication lets
	// every test connect as it without a password.
	superuser = "postgres"
)

// libDir is where Debian installs each major version of the server.
const libDir = "/usr/lib/postgresql"

// Cluster is one PostgreSQL server with its data directory, running or
// stopped. Its methods are safe for concurrent use.
type Cluster struct {
	bin     binaries
	acct    *account
	dir     string // the temporary directory everything lives in
	dataDir string
	logPath string
	port    int

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed when proc has been waited for
	status error         // proc's exit status, once exited is closed
	closed bool

	dbSeq atomic.Int64
}

// Start creates a new cluster in a temporary directory and starts its
// server. The caller must Close it, from t.Cleanup or TestMain, or its
// directory stays behind.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := findBinaries(libDir)
	if err != nil {
		return nil, err
	}
	acct, err := lookupAccount()
	if err != nil {
		return nil, err
	}
	dir, err := makeDir(acct)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		bin:     bin,
		acct:    acct,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "postgres.log"),
	}
	if err := c.initdb(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	// The free port is found by binding and releasing it, so another
	// process can take it before the server binds it; a few fresh ports
	// make that race harmless.
	for attempt := 1; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return nil, errors.Join(err, c.Close())
		}
		c.mu.Lock()
		err = c.start(ctx)
		c.mu.Unlock()
		if err == nil {
			return c, nil
		}
		if attempt == 5 || !strings.Contains(err.Error(), "Address already in use") {
			return nil, errors.Join(err, c.Close())
		}
	}
}

// URL is the connection URL of database db, over TCP so that tests reach
// the server the way the sidecar will.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, c.port, db)
}

// CreateDatabase creates database name and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := c.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// NewDatabase creates an empty database for the calling test alone, so
// tests sharing a cluster can run in parallel without seeing each other's
// rows, and drops it when the test ends. It returns its URL.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := c.databaseName(tb.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := c.CreateDatabase(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// A test that stopped or killed its cluster and did not start it
		// again leaves nothing to drop: the database goes with the
		// cluster's directory.
		if !c.running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a pool the test forgot to close must not keep the
		// database, and its connections, alive for the rest of the run.
		if err := c.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return url
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// databaseName makes a name unique within the cluster that still says
// which test a leftover database or a line of the server log belongs to.
func (c *Cluster) databaseName(test string) string {
	base := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(test), "_"), "_")
	if len(base) > 40 { // identifiers end at 63 bytes
		base = base[:40]
	}
	if base == "" {
		base = "test"
	}
	return fmt.Sprintf("%s_%d", base, c.dbSeq.Add(1))
}

// exec runs one statement on the maintenance database. CREATE and DROP
// DATABASE cannot run inside a transaction, so this is a bare connection
// rather than a pool.
func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Start brings a stopped or killed cluster back on the same port with the
// same data, so a URL handed out before still works. After Kill the server
// recovers from its write-ahead log first; Start returns once that is done
// and it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("pgtest: start: cluster is closed")
	}
	if c.runningLocked() {
		return errors.New("pgtest: start: server is running")
	}
	return c.start(ctx)
}

// Stop shuts the server down the way an operator would (fast shutdown:
// open transactions are rolled back, clients disconnected, a checkpoint
// written) and returns once it has exited. If ctx ends first, or a minute
// passes, every server process is killed and Stop returns an error.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mustRun("stop"); err != nil {
		return err
	}
	return c.shutdown(ctx, fastShutdown)
}

// Kill ends the server as a crash would: every server process gets
// SIGKILL at once, so nothing finishes a write, flushes a buffer or writes
// a checkpoint. Start brings it back through crash recovery. It returns
// once no server process is left, because a new server cannot start while
// one of the old one's processes still holds its shared memory.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mustRun("kill"); err != nil {
		return err
	}
	return c.kill()
}

// Close stops the server (immediate shutdown: there is nothing to keep)
// and removes the cluster's directory. Call it from t.Cleanup or, for a
// cluster shared by a package, from TestMain (Main does that for Shared):
// cleanups run even when a test panics. When the test binary dies without
// running them (a panic outside the test goroutine, a timeout, SIGKILL)
// the kernel still kills the server with it, and the next Start in this
// temporary directory removes the directory left behind.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.runningLocked() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		err = c.shutdown(ctx, immediateShutdown)
		cancel()
	}
	if rmErr := os.RemoveAll(c.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("pgtest: remove %s: %w", c.dir, rmErr))
	}
	return err
}

func (c *Cluster) mustRun(op string) error {
	if c.closed {
		return fmt.Errorf("pgtest: %s: cluster is closed", op)
	}
	if c.proc == nil {
		return fmt.Errorf("pgtest: %s: server is not running", op)
	}
	select {
	case <-c.exited:
		c.proc = nil
		return fmt.Errorf("pgtest: %s: server had already exited (%v)%s", op, c.status, c.logTail())
	default:
		return nil
	}
}

func (c *Cluster) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked()
}

func (c *Cluster) runningLocked() bool {
	if c.proc == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// initdb creates the data directory. --no-sync only spares initdb's own
// final flush of files nobody would miss after a power cut, since the
// cluster does not outlive the test run; the server itself keeps fsync on.
func (c *Cluster) initdb(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, c.bin.initdb,
		"-D", c.dataDir, "-U", superuser, "-A", "trust", "--no-sync",
		"-E", "UTF8", "--locale=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	c.prepare(cmd)
	if err := startProcess(cmd); err != nil {
		return fmt.Errorf("pgtest: initdb: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w: %s", err, tail(out.Bytes()))
	}
	return nil
}

// prepare makes cmd run as the server's account, in the cluster's
// directory (the caller's working directory may be one that account cannot
// enter).
func (c *Cluster) prepare(cmd *exec.Cmd) {
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	c.acct.runAs(cmd)
}

// start starts the server and waits until it accepts connections. c.mu is
// held.
func (c *Cluster) start(ctx context.Context) error {
	logFile, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cmd := exec.Command(c.bin.postgres,
		"-D", c.dataDir,
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.dir,
		"-c", "max_connections="+strconv.Itoa(maxConnections),
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	c.prepare(cmd)
	err = startProcess(cmd)
	logFile.Close() // the server has its own copy
	if err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	c.proc, c.exited = cmd.Process, exited
	go func() {
		err := cmd.Wait()
		c.status = err // read only after exited is closed
		if err == nil {
			c.status = errors.New("exit status 0")
		}
		close(exited)
	}()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	err = c.waitReady(ctx)
	if err == nil {
		return nil
	}
	select {
	case <-exited:
		c.proc = nil
		return fmt.Errorf("pgtest: postgres exited while starting (%v)%s", c.status, c.logTail())
	default:
	}
	killErr := c.kill()
	return errors.Join(fmt.Errorf("pgtest: postgres did not accept connections: %w%s", err, c.logTail()), killErr)
}

// waitReady waits for the status line the server writes into
// postmaster.pid (the one pg_ctl -w waits for) to say ready, so the log
// is not filled with refused connections, then for a connection over TCP
// to succeed, since that is what tests use.
func (c *Cluster) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	pid := strconv.Itoa(c.proc.Pid)
	for {
		if c.pidFileSays(pid, "ready") {
			attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
			conn, err := pgx.Connect(attempt, c.URL("postgres"))
			cancel()
			if err == nil {
				return conn.Close(ctx)
			}
		}
		select {
		case <-c.exited:
			return errors.New("exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// pidFileSays reports whether postmaster.pid is the one written by server
// pid (a killed server leaves its own behind) and shows status.
func (c *Cluster) pidFileSays(pid, status string) bool {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) >= 8 && lines[0] == pid && strings.TrimSpace(lines[7]) == status
}

type shutdownMode int

const (
	fastShutdown shutdownMode = iota
	immediateShutdown
)

// shutdown asks the server to stop and waits for it; a server that does
// not stop in time is killed, so no caller can leave one running. c.mu is
// held.
func (c *Cluster) shutdown(ctx context.Context, mode shutdownMode) error {
	if err := signalShutdown(c.proc, mode); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return errors.Join(fmt.Errorf("pgtest: signal postgres: %w", err), c.kill())
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-c.exited:
		c.proc = nil
		return nil
	case <-ctx.Done():
		return errors.Join(fmt.Errorf("pgtest: postgres did not stop: %w%s", ctx.Err(), c.logTail()), c.kill())
	case <-timer.C:
		return errors.Join(fmt.Errorf("pgtest: postgres did not stop within %v%s", stopTimeout, c.logTail()), c.kill())
	}
}

// kill SIGKILLs the server and its children and waits until they are gone.
// c.mu is held.
func (c *Cluster) kill() error {
	err := killServer(c.proc, c.exited)
	c.proc = nil
	if err != nil {
		return fmt.Errorf("pgtest: kill postgres: %w", err)
	}
	return nil
}

// logTail is the end of the server log, for errors: why a server failed is
// written there, not in its exit status.
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	return "; end of " + c.logPath + ":\n" + tail(b)
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// childEnv is the environment without the PG* variables a developer may
// have set for their own server, which would otherwise steer this one;
// LC_ALL=C keeps the server's messages, and so the log tails in errors, in
// English.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_ALL=") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

type binaries struct {
	initdb, postgres string
}

// findBinaries looks where each way of installing the server puts them:
// Debian's versioned directories (which are not on PATH), then pg_config,
// which packages from elsewhere install, then PATH.
func findBinaries(libDir string) (binaries, error) {
	if dirs, _ := filepath.Glob(filepath.Join(libDir, "*", "bin")); len(dirs) > 0 {
		// Several majors can be installed side by side; the newest is the
		// one a new cluster would be created with.
		sort.Slice(dirs, func(i, j int) bool {
			return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
		})
		for _, d := range dirs {
			if b, ok := binariesIn(d); ok {
				return b, nil
			}
		}
	}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
			if b, ok := binariesIn(strings.TrimSpace(string(out))); ok {
				return b, nil
			}
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		// A link on PATH (/usr/local/bin/initdb, say) names the
		// directory the server binaries really are in.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			initdb = real
		}
		if b, ok := binariesIn(filepath.Dir(initdb)); ok {
			return b, nil
		}
	}
	return binaries{}, ErrNotInstalled
}

func binariesIn(dir string) (binaries, bool) {
	b := binaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	for _, p := range []string{b.initdb, b.postgres} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return binaries{}, false
		}
	}
	return b, true
}

// versionLess orders Debian's major version directories numerically, so
// 10 is newer than 9.6.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, errA := strconv.Atoi(pa[i])
		nb, errB := strconv.Atoi(pb[i])
		if errA != nil || errB != nil {
			return a < b
		}
		if na != nb {
			return na < nb
		}
	}
	return len(pa) < len(pb)
}

// ownerFile holds the pid of the test binary that made a cluster's
// directory, so a later run can tell a directory left behind by a binary
// that died from one in use.
const ownerFile = "owner.pid"

// makeDir creates the cluster's directory, owned by the account the
// server runs as, in the first temporary directory that account can reach
// whose path leaves room for the server's unix socket name.
func makeDir(acct *account) (string, error) {
	var tried []string
	for _, parent := range []string{os.TempDir(), "/tmp"} {
		// sun_path holds 107 bytes; the socket is /pgtest-NNNNNNNNN/.s.PGSQL.NNNNN.
		if len(parent)+40 > 107 || !acct.canReach(parent) {
			tried = append(tried, parent)
			continue
		}
		removeAbandoned(parent)
		dir, err := os.MkdirTemp(parent, "pgtest-")
		if err != nil {
			return "", fmt.Errorf("pgtest: %w", err)
		}
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
		if err == nil {
			err = acct.own(dir)
		}
		if err != nil {
			return "", errors.Join(fmt.Errorf("pgtest: %w", err), os.RemoveAll(dir))
		}
		return dir, nil
	}
	return "", fmt.Errorf("pgtest: no temporary directory the server's account can reach with a path short enough for its socket (tried %s); set TMPDIR", strings.Join(tried, ", "))
}

// removeAbandoned removes cluster directories whose test binary and server
// are both gone. Directories it cannot judge stay: a stray directory costs
// disk space, removing a live one would break another run.
func removeAbandoned(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "pgtest-*"))
	for _, dir := range dirs {
		owner, err := readPID(filepath.Join(dir, ownerFile))
		if err != nil || owner == os.Getpid() || processExists(owner) {
			continue
		}
		server, err := readPID(filepath.Join(dir, "data", "postmaster.pid"))
		if err == nil && processExists(server) {
			continue
		}
		os.RemoveAll(dir)
	}
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}
