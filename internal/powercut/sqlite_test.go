package powercut

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// dsn opens path in WAL mode. Small checkpoint and journal limits make the
// checkpoints (writes and fsyncs of the database file) and WAL truncation
// happen during a short run.
func dsn(path, synchronous string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+synchronous+")")
	q.Add("_pragma", "wal_autocheckpoint(16)")
	q.Add("_pragma", "journal_size_limit(16384)")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

const schema = `CREATE TABLE IF NOT EXISTS rows(id INTEGER PRIMARY KEY, cycle INTEGER NOT NULL, payload BLOB NOT NULL)`

// cycleResult is what one mount-insert-cut cycle saw.
type cycleResult struct {
	// acked holds the rows whose commit returned success, before the cut
	// started or after: with synchronous=FULL a commit returns only after
	// its fsync, and no fsync succeeds once the cut has started, so a
	// commit acknowledged after that point was durable before it.
	acked     []int64
	attempted int64 // highest id an INSERT was issued for
	report    *CutReport
	stats     Stats // just before the cut (timed cuts only)
	how       string
}

// insertAndCut mounts backing and inserts rows from id first+1 on, one
// commit each, from one goroutine. Once minAcked rows are committed it
// cuts the power: either from this goroutine after a random delay, or
// (trigger) inside a random one of the next writes, which lands the cut
// between SQLite's writes and its fsync.
func insertAndCut(t *testing.T, backing string, opts Options, cycle int, first int64, minAcked int, tear, trigger bool, rng *rand.Rand) cycleResult {
	t.Helper()
	f, mp := mountT(t, backing, opts)
	require.True(t, f.KernelPassthrough(), "SQLite's -shm needs FUSE passthrough (Linux 6.9+) to be mmapped safely in this process")

	db, err := sql.Open("sqlite", dsn(filepath.Join(mp, "db.sqlite"), "FULL"))
	require.NoError(t, err)
	db.SetMaxOpenConns(1) // no new connection may open by name once the mount is gone
	t.Cleanup(func() { db.Close() })
	_, err = db.Exec(schema)
	require.NoError(t, err)

	var (
		mu        sync.Mutex
		acked     []int64
		attempted int64
		enough    = make(chan struct{})
		stopped   = make(chan error, 1)
	)
	go func() {
		payload := make([]byte, 200+rng.IntN(400))
		for id := first + 1; ; id++ {
			mu.Lock()
			attempted = id
			mu.Unlock()
			if _, err := db.Exec(`INSERT INTO rows(id, cycle, payload) VALUES(?, ?, ?)`, id, cycle, payload); err != nil {
				stopped <- err
				return
			}
			mu.Lock()
			acked = append(acked, id)
			if len(acked) == minAcked {
				close(enough)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-enough:
	case err := <-stopped:
		t.Fatalf("cycle %d: insert failed before the cut: %v", cycle, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("cycle %d: %d rows not committed in time", cycle, minAcked)
	}

	var res cycleResult
	if trigger {
		n := 1 + rng.IntN(40)
		res.how = fmt.Sprintf("at write %d from then", n)
		select {
		case r := <-f.CutAtWrite(n, tear):
			require.NoError(t, r.Err)
			res.report = r.Report
		case <-time.After(20 * time.Second):
			t.Fatalf("cycle %d: the armed cut did not fire", cycle)
		}
	} else {
		d := time.Duration(rng.IntN(40_000)) * time.Microsecond
		res.how = fmt.Sprintf("after %v", d)
		time.Sleep(d)
		res.stats = f.Stats()
		res.report, err = f.Cut(tear)
		require.NoError(t, err)
	}

	assert.Zero(t, f.Stats().PassthroughIO, "the kernel serves the -shm itself")

	select {
	case err := <-stopped:
		assert.ErrorContains(t, err, "disk I/O error", "cycle %d", cycle)
	case <-time.After(10 * time.Second):
		t.Fatalf("cycle %d: the writer did not stop after the cut", cycle)
	}
	mu.Lock()
	res.acked, res.attempted = slices.Clone(acked), attempted
	mu.Unlock()
	db.Close() // fails or not; it must release the files
	select {
	case <-f.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("cycle %d: the FUSE connection outlived the database handle", cycle)
	}
	assertEmptyDir(t, mp)
	return res
}

// survivors opens the backing database directly, as the program would
// after a reboot, checks its integrity and returns the ids it holds.
func survivors(t *testing.T, backing string) map[int64]bool {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(filepath.Join(backing, "db.sqlite"), "FULL"))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	var ok string
	require.NoError(t, db.QueryRow(`PRAGMA integrity_check`).Scan(&ok))
	require.Equal(t, "ok", ok)
	ids := map[int64]bool{}
	var exists int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'rows'`).Scan(&exists))
	if exists == 0 {
		return ids
	}
	rows, err := db.Query(`SELECT id FROM rows`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids[id] = true
	}
	require.NoError(t, rows.Err())
	return ids
}

func missing(acked []int64, have map[int64]bool) []int64 {
	var m []int64
	for _, id := range acked {
		if !have[id] {
			m = append(m, id)
		}
	}
	return m
}

// SQLite in WAL mode with synchronous=FULL survives power cuts at random
// moments (with and without a torn last write): the database is intact
// and every commit that returned before the cut is there. Each cycle
// continues on the database the previous one left.
func TestSQLiteSurvivesPowerCuts(t *testing.T) {
	backing := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var last int64
	torn := 0
	for cycle := 1; cycle <= 8; cycle++ {
		start := time.Now()
		tear, trigger := cycle%2 == 0, cycle%4 >= 2
		res := insertAndCut(t, backing, Options{Passthrough: SQLiteShm, Seed: rng.Uint64()}, cycle, last, 10+rng.IntN(30), tear, trigger, rng)
		have := survivors(t, backing)
		assert.Empty(t, missing(res.acked, have), "cycle %d: acknowledged commits lost", cycle)

		// Commits are sequential: what survived is a prefix of the
		// inserts (a commit in flight at the cut may or may not be
		// there), with no hole.
		var top int64
		for id := range have {
			top = max(top, id)
		}
		for id := int64(1); id <= top; id++ {
			require.True(t, have[id], "cycle %d: row %d missing below row %d", cycle, id, top)
		}
		assert.LessOrEqual(t, top, res.attempted)
		if res.report.Torn != nil && res.report.Torn.Kept > 0 {
			torn++
		}
		t.Logf("cycle %d: cut %s (tear %v): %d commits acknowledged, %d rows on disk, %d in flight; dropped %d bytes in %d files, torn %+v; %v",
			cycle, res.how, tear, len(res.acked), len(have), res.attempted-last-int64(len(res.acked)),
			res.report.DroppedBytes, res.report.DroppedFiles, res.report.Torn, time.Since(start).Round(time.Millisecond))
		last = top
	}
	t.Logf("%d cuts persisted part of a torn write", torn)
}

// The same run on a disk that lies about fsync loses acknowledged commits,
// and the check above catches it.
func TestSQLiteLossIsCaughtWhenFsyncLies(t *testing.T) {
	backing := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))

	// An honest first life with no fsync at all (synchronous=OFF), shut
	// down cleanly: Unmount writes everything out.
	f, mp := mountT(t, backing, Options{Passthrough: SQLiteShm})
	db, err := sql.Open("sqlite", dsn(filepath.Join(mp, "db.sqlite"), "OFF"))
	require.NoError(t, err)
	_, err = db.Exec(schema)
	require.NoError(t, err)
	const setup = 50
	for id := int64(1); id <= setup; id++ {
		_, err := db.Exec(`INSERT INTO rows(id, cycle, payload) VALUES(?, 0, x'00')`, id)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	assert.Positive(t, f.Stats().PendingBytes, "synchronous=OFF leaves the rows unsynced")
	require.NoError(t, f.Unmount())
	have := survivors(t, backing)
	assert.Len(t, have, setup, "a clean unmount persists every row")

	last := int64(setup)
	for cycle := 1; cycle <= 3; cycle++ {
		res := insertAndCut(t, backing, Options{Passthrough: SQLiteShm, LieOnFsync: true}, cycle, last, 10, false, false, rng)
		have := survivors(t, backing)
		lost := missing(res.acked, have)
		t.Logf("cycle %d: %d commits acknowledged, %d of them lost; %d fsyncs lied about", cycle, len(res.acked), len(lost), res.stats.LiedSyncs)
		for id := int64(1); id <= setup; id++ {
			require.True(t, have[id], "row %d from the clean shutdown", id)
		}
		if len(lost) > 0 {
			return
		}
		for id := range have {
			last = max(last, id)
		}
	}
	t.Fatal("a disk that lies about fsync lost no acknowledged commit in 3 cycles: the harness would not catch it")
}
