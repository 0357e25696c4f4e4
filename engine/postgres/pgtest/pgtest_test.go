package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

// startCluster starts a cluster of the test's own, for tests that stop,
// kill or close it.
func startCluster(t *testing.T) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	return c
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	require.NoError(t, conn.QueryRow(context.Background(), sql, args...).Scan(&s))
	return s
}

// serverProcesses is the postmaster and its children.
func serverProcesses(t *testing.T, c *Cluster) (postmaster int, kids []proc) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NotNil(t, c.proc)
	kids = children(c.proc.Pid)
	require.NotEmpty(t, kids, "a running server has a checkpointer, a WAL writer, ...")
	return c.proc.Pid, kids
}

// processesIn lists the processes whose working directory is dir or below
// it: every server process works in its data directory.
func processesIn(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
			found = append(found, e.Name()+" in "+cwd)
		}
	}
	return found
}

func TestStart_ServesSQLWithDurableSettings(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	conn := connect(t, c.URL("postgres"))
	ctx := context.Background()

	_, err := conn.Exec(ctx, `CREATE TABLE orders (id text PRIMARY KEY, amount bigint NOT NULL)`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO orders VALUES ('o-1', 1250)`)
	require.NoError(t, err)
	var amount int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT amount FROM orders WHERE id = 'o-1'`).Scan(&amount))
	assert.Equal(t, int64(1250), amount)

	assert.Equal(t, "on", queryString(t, conn, "SHOW fsync"))
	assert.Equal(t, "on", queryString(t, conn, "SHOW synchronous_commit"))
	assert.Equal(t, "200", queryString(t, conn, "SHOW max_connections"))
	assert.Equal(t, "127.0.0.1", queryString(t, conn, "SHOW listen_addresses"))
	assert.Equal(t, c.dir, queryString(t, conn, "SHOW unix_socket_directories"))
	assert.FileExists(t, filepath.Join(c.dir, "postgres.log"))
	assert.Regexp(t, `^postgres://postgres@127\.0\.0\.1:\d+/shop\?sslmode=disable$`, c.URL("shop"))
}

func TestNewDatabase_GivesEachTestItsOwnDatabase(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	var names []string
	for _, sub := range []string{"first", "second"} {
		t.Run(sub, func(t *testing.T) {
			url := c.NewDatabase(t)
			conn := connect(t, url)
			names = append(names, conn.Config().Database)
			// Each database starts empty: the first test's table is not
			// in the second's.
			var tables int
			require.NoError(t, conn.QueryRow(context.Background(),
				`SELECT count(*) FROM pg_tables WHERE tablename = 'orders'`).Scan(&tables))
			assert.Zero(t, tables)
			_, err := conn.Exec(context.Background(), `CREATE TABLE orders (id text PRIMARY KEY)`)
			require.NoError(t, err)
		})
	}
	require.Len(t, names, 2)
	assert.NotEqual(t, names[0], names[1])
	assert.Contains(t, names[0], "testnewdatabase_giveseachtestitsowndatab")

	// Each was dropped when its test ended, although its connection was
	// still open then (cleanups run in reverse: the drop came first).
	conn := connect(t, c.URL("postgres"))
	var left int
	require.NoError(t, conn.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, names).Scan(&left))
	assert.Zero(t, left)
}

func TestStopStart_KeepsCommittedDataAndURL(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	ctx := context.Background()
	url, err := c.CreateDatabase(ctx, "shop")
	require.NoError(t, err)
	conn := connect(t, url)
	_, err = conn.Exec(ctx, `CREATE TABLE orders (id text PRIMARY KEY)`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO orders VALUES ('o-1')`)
	require.NoError(t, err)

	require.NoError(t, c.Stop(ctx))
	assert.Error(t, c.Stop(ctx), "stopping a stopped server")
	_, err = pgx.Connect(ctx, url)
	assert.Error(t, err, "nothing listens while it is stopped")

	require.NoError(t, c.Start(ctx))
	assert.Error(t, c.Start(ctx), "starting a running server")
	conn = connect(t, url)
	assert.Equal(t, "o-1", queryString(t, conn, `SELECT id FROM orders`))
	assert.Contains(t, readLog(t, c), "database system was shut down at")
}

func TestKillStart_RecoversCommittedData(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	ctx := context.Background()
	conn := connect(t, c.URL("postgres"))
	_, err := conn.Exec(ctx, `CREATE TABLE orders (id text PRIMARY KEY)`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO orders SELECT 'o-' || i FROM generate_series(1, 1000) i`)
	require.NoError(t, err)
	// Still open at the kill: recovery must not bring it back.
	open := connect(t, c.URL("postgres"))
	tx, err := open.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO orders VALUES ('uncommitted')`)
	require.NoError(t, err)

	postmaster, kids := serverProcesses(t, c)
	require.NoError(t, c.Kill())
	assert.False(t, processExists(postmaster), "postmaster %d", postmaster)
	for _, k := range kids {
		assert.True(t, k.gone(), "server process %d", k.pid)
	}
	assert.Error(t, c.Kill(), "killing a killed server")

	require.NoError(t, c.Start(ctx))
	conn = connect(t, c.URL("postgres"))
	assert.Equal(t, "1000", queryString(t, conn, `SELECT count(*)::text FROM orders`))
	assert.Equal(t, "0", queryString(t, conn, `SELECT count(*)::text FROM orders WHERE id = 'uncommitted'`))
	assert.Contains(t, readLog(t, c), "automatic recovery in progress")
}

func TestClose_LeavesNoProcessOrDirectory(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx)
	require.NoError(t, err)
	conn := connect(t, c.URL("postgres")) // a client still connected
	_ = conn
	postmaster, kids := serverProcesses(t, c)
	require.NotEmpty(t, processesIn(c.dataDir))

	require.NoError(t, c.Close())
	assert.NoDirExists(t, c.dir)
	assert.False(t, processExists(postmaster), "postmaster %d", postmaster)
	for _, k := range kids {
		assert.True(t, k.gone(), "server process %d", k.pid)
	}
	assert.Empty(t, processesIn(c.dir))
	assert.NoError(t, c.Close(), "a second Close")
	assert.Error(t, c.Start(ctx), "starting a closed cluster")
}

func TestClose_StoppedCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	require.NoError(t, c.Stop(context.Background()))
	require.NoError(t, c.Close())
	assert.NoDirExists(t, c.dir)
}

func readLog(t *testing.T, c *Cluster) string {
	t.Helper()
	b, err := os.ReadFile(c.logPath)
	require.NoError(t, err)
	return string(b)
}

func TestFindBinaries_NotInstalledSaysWhatToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries(t.TempDir())
	require.ErrorIs(t, err, ErrNotInstalled)
	assert.Equal(t, "PostgreSQL server binaries not found: install Debian's postgresql package (apt-get install postgresql)", err.Error())
}

func TestFindBinaries_NewestCompleteMajor(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	lib := t.TempDir()
	install := func(major string, names ...string) {
		bin := filepath.Join(lib, major, "bin")
		require.NoError(t, os.MkdirAll(bin, 0o755))
		for _, n := range names {
			require.NoError(t, os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	install("9.6", "initdb", "postgres")
	install("10", "initdb", "postgres")
	install("16", "initdb") // a client-only install has no server
	b, err := findBinaries(lib)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(lib, "10", "bin", "initdb"), b.initdb)
	assert.Equal(t, filepath.Join(lib, "10", "bin", "postgres"), b.postgres)
}

// TestMakeDir_ReachableByTheServer: a root test binary with a TMPDIR the
// server's account cannot enter puts the cluster in /tmp instead.
func TestMakeDir_ReachableByTheServer(t *testing.T) {
	private := t.TempDir()
	require.NoError(t, os.Chmod(private, 0o700))
	t.Setenv("TMPDIR", private)
	acct, err := lookupAccount()
	require.NoError(t, err)
	dir, err := makeDir(acct)
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	assert.Equal(t, os.Geteuid() != 0, strings.HasPrefix(dir, private+"/"), dir)
	assert.True(t, acct.canReach(dir))
}

func TestRemoveAbandoned_OnlyDirectoriesOfDeadRuns(t *testing.T) {
	parent := t.TempDir()
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	mk := func(name, owner string) string {
		dir := filepath.Join(parent, name)
		require.NoError(t, os.Mkdir(dir, 0o700))
		if owner != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644))
		}
		return dir
	}
	abandoned := mk("pgtest-1", strconv.Itoa(dead.Process.Pid))
	ours := mk("pgtest-2", strconv.Itoa(os.Getpid()))
	beingMade := mk("pgtest-3", "")
	other := mk("other-4", strconv.Itoa(dead.Process.Pid))

	removeAbandoned(parent)
	assert.NoDirExists(t, abandoned)
	assert.DirExists(t, ours)
	assert.DirExists(t, beingMade)
	assert.DirExists(t, other)
}
