package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/orderstate/orderstate/engine"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Options tune a DB; the zero value is a sane default.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives internal errors; slog.Default when nil.
	Logger *slog.Logger
	// BusyTimeout is how long a statement waits on a lock held by another
	// process (a reconcile run, say) before the store answers unavailable.
	BusyTimeout time.Duration
	// MaxBatch bounds how many writes share one transaction.
	MaxBatch int
	// Readers is the size of the read connection pool; by default one per
	// CPU the process may use, at least two, so one long report query does
	// not hold up every order lookup, and at most eight, since each holds a
	// page cache of its own.
	Readers int
}

// DB is the SQLite store. Writes are serialised through one goroutine that
// commits them in groups; reads run on a separate pool.
type DB struct {
	path     string
	opts     Options
	now      func() time.Time
	log      *slog.Logger
	write    *sql.DB
	read     *sql.DB
	hot      hotStmts    // writer's, on its one connection
	rstmts   stmtCache   // readers'
	cache    *orderCache // the writer's
	ckpt     checkpointer
	logs     logSyncer
	counters writerCounters

	ops    chan *op
	quit   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once

	// mu guards stopping; senders counts the callers between the
	// stopping check and their op's hand-over to the writer, so Close
	// waits for them before it stops the writer: otherwise one could
	// queue an op after the writer drained and exited, and wait forever.
	mu       sync.Mutex
	stopping bool
	senders  sync.WaitGroup
}

// Open opens (creating if needed) the SQLite file at path, applies pending
// migrations and starts the writer.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, engine.Errorf(engine.EINVALID, "database path is empty")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Readers <= 0 {
		// A read of an order is CPU work once its pages are in the OS
		// cache, so readers beyond the CPUs only queue for them, and take
		// turns from the one writer goroutine every webhook waits on: on
		// two cores, two readers served more reads than four and slowed
		// ingest less (docs/BENCHMARKS.md).
		opts.Readers = min(max(2, runtime.GOMAXPROCS(0)), 8)
	}
	db := &DB{path: path, opts: opts, now: func() time.Time { return opts.Now().UTC() }, log: opts.Logger,
		ops: make(chan *op, 1024), quit: make(chan struct{}), cache: newOrderCache(maxCachedOrders)}

	if err := create(ctx, path); err != nil {
		return nil, err
	}
	var err error
	if db.write, err = sql.Open("sqlite", dsn(path, opts.BusyTimeout, roleWriter)); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One writer connection: SQLite admits one writer at a time anyway, and
	// a single connection never fights itself for the lock.
	db.write.SetMaxOpenConns(1)
	db.write.SetConnMaxIdleTime(0)
	if err := db.checkWAL(ctx); err != nil {
		db.write.Close()
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.write.Close()
		return nil, err
	}
	// The writer's commits do not wait for the disk (see logSyncer); the
	// migrations just committed are flushed here, before anything else.
	if err := db.logs.open(path); err != nil {
		db.write.Close()
		return nil, engine.Wrap(engine.EUNAVAILABLE, err, "cannot open database %s", db.path)
	}
	if err := db.logs.sync(); err != nil {
		db.logs.close()
		db.write.Close()
		return nil, err
	}
	// The writer keeps its one connection for good: see hotStmts.
	wconn, err := db.write.Conn(ctx)
	if err != nil {
		db.write.Close()
		return nil, engine.Wrap(engine.EUNAVAILABLE, err, "cannot open database %s", db.path)
	}
	closeWriter := func() {
		db.hot.close()
		wconn.Close()
		db.write.Close()
		db.logs.close()
	}
	if err := db.hot.prepare(ctx, wconn, hotQueries); err != nil {
		closeWriter()
		return nil, err
	}
	if db.read, err = sql.Open("sqlite", dsn(path, opts.BusyTimeout, roleReader)); err != nil {
		closeWriter()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	db.read.SetMaxOpenConns(opts.Readers)
	db.read.SetMaxIdleConns(opts.Readers)
	if err := db.rstmts.prepare(ctx, db.read, readQueries()); err != nil {
		db.read.Close()
		closeWriter()
		return nil, err
	}
	if db.ckpt.conn, err = sql.Open("sqlite", dsn(path, opts.BusyTimeout, roleCheckpointer)); err != nil {
		db.read.Close()
		closeWriter()
		return nil, fmt.Errorf("open %s for checkpoints: %w", path, err)
	}
	db.ckpt.conn.SetMaxOpenConns(1)
	db.wg.Add(3)
	go db.writer()
	go db.syncs()
	go db.checkpoints()
	return db, nil
}

// role is what a connection is for.
type role int

const (
	roleReader role = iota
	// roleWriter commits without waiting for the disk: logSyncer flushes
	// the log before any caller is answered.
	roleWriter
	roleCheckpointer
)

// dsn puts every pragma in the connection string so each pooled connection
// gets them, not just the first one.
func dsn(path string, busy time.Duration, r role) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	if r == roleWriter {
		q.Add("_pragma", "synchronous(NORMAL)")
	} else {
		q.Add("_pragma", "synchronous(FULL)")
	}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "temp_store(MEMORY)")
	if r == roleReader {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		// Checkpoints run off the commit path: see checkpoint.go.
		q.Add("_pragma", "wal_autocheckpoint(0)")
		q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", 64<<20))
	}
	q.Set("_time_format", "sqlite")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// create makes a new database file with 8 KiB pages, which hold three 2 KiB
// raw bodies where 4 KiB pages hold one. The page size only takes effect
// before the first table exists and before WAL mode is on, and the driver
// applies DSN pragmas in its own order, so it is set on a connection of its
// own.
func create(ctx context.Context, path string) error {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_pragma=page_size(8192)")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "cannot create database %s", path)
	}
	return nil
}

func (db *DB) checkWAL(ctx context.Context) error {
	var mode string
	if err := db.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "cannot open database %s", db.path)
	}
	if !strings.EqualFold(mode, "wal") {
		return engine.Errorf(engine.EUNAVAILABLE, "database %s is in journal mode %q, want wal", db.path, mode)
	}
	return nil
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "cannot create migrations table in %s", db.path)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	applied, err := db.appliedMigrations(ctx)
	if err != nil {
		return err
	}
	if err := engine.CheckSchema("database "+db.path, applied, names); err != nil {
		return err
	}
	for _, name := range names {
		if err := db.migrateFile(ctx, name); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// appliedMigrations lists the migrations the store's file records.
func (db *DB) appliedMigrations(ctx context.Context) ([]string, error) {
	rows, err := db.write.QueryContext(ctx, `SELECT name FROM migrations ORDER BY name`)
	if err != nil {
		return nil, engine.Wrap(engine.EUNAVAILABLE, err, "cannot read the migrations of %s", db.path)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, engine.Wrap(engine.EUNAVAILABLE, err, "cannot read the migrations of %s", db.path)
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// SchemaVersion is the schema version of this build's SQLite store: that
// of its newest migration.
func SchemaVersion() int {
	names, _ := fs.Glob(migrationFS, "migrations/*.sql")
	v := 0
	for _, n := range names {
		v = max(v, engine.SchemaVersion(n))
	}
	return v
}

func (db *DB) migrateFile(ctx context.Context, name string) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	} else if n > 0 {
		return nil
	}
	body, err := fs.ReadFile(migrationFS, name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO migrations (name, applied_at) VALUES (?, ?)`, name, formatTime(db.now())); err != nil {
		return err
	}
	return tx.Commit()
}

// Close stops accepting writes, lets queued ones commit and closes the
// connections.
func (db *DB) Close() error {
	var err error
	db.closed.Do(func() {
		db.mu.Lock()
		db.stopping = true
		db.mu.Unlock()
		db.senders.Wait()
		close(db.quit)
		db.wg.Wait()
		db.hot.close()
		db.rstmts.close()
		if db.read != nil {
			err = errors.Join(err, db.read.Close())
		}
		if db.ckpt.conn != nil {
			err = errors.Join(err, db.ckpt.conn.Close())
		}
		err = errors.Join(err, db.hot.conn.Close(), db.write.Close(), db.logs.close())
	})
	return err
}

// closedError is ESHUTDOWN once Close has begun: a read then answers the
// same retry-later code a write does, not the driver's "database is
// closed", which would be an internal error.
func (db *DB) closedError() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.stopping {
		return engine.Errorf(engine.ESHUTDOWN, "orderstate is shutting down; retry")
	}
	return nil
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Now is the store's clock, in UTC.
func (db *DB) Now() time.Time { return db.now() }

// Ping checks the store can be read and written: /readyz.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "database cannot be read")
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		// Writing the watermark of the probe itself proves a commit works
		// (a read-only or full disk fails here).
		_, err := tx.ExecContext(ctx, `INSERT INTO watermarks (name, at) VALUES ('readyz', ?)
			ON CONFLICT (name) DO UPDATE SET at = excluded.at`, formatTime(db.now()))
		return err
	}, true)
}

// op is one unit of work for the writer, run inside a transaction shared
// with other ops. fn may run more than once (when another op in its batch
// fails), so it must not keep state from an earlier run.
type op struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan error
	// keepsCache says fn keeps the writer's order cache true itself (it
	// writes no order row, or updates or forgets the rows it writes); any
	// other op empties the cache before it runs.
	keepsCache bool
}

// Update runs fn in a write transaction shared with other concurrent
// writes, and returns once that transaction is durably committed (nil) or
// fn's own work has been rolled back (its error). fn must not keep tx.
func (db *DB) Update(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.update(ctx, fn, false)
}

func (db *DB) update(ctx context.Context, fn func(*sql.Tx) error, keepsCache bool) error {
	db.mu.Lock()
	if db.stopping {
		db.mu.Unlock()
		return engine.Errorf(engine.ESHUTDOWN, "orderstate is shutting down; retry")
	}
	db.senders.Add(1)
	db.mu.Unlock()
	queued, err := db.send(ctx, fn, keepsCache)
	db.senders.Done()
	if err != nil {
		return err
	}
	// Once queued, the op is always answered: the caller must learn whether
	// its write is durable, so it waits even past its own cancellation.
	return <-queued.done
}

// send hands an op to the writer, which runs until Close has seen every
// sender out.
func (db *DB) send(ctx context.Context, fn func(*sql.Tx) error, keepsCache bool) (*op, error) {
	if err := db.logs.err(); err != nil {
		return nil, err
	}
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1), keepsCache: keepsCache}
	select {
	case db.ops <- o:
		return o, nil
	case <-ctx.Done():
		return nil, engine.Wrap(engine.EUNAVAILABLE, ctx.Err(), "request cancelled before it was stored")
	}
}

func (db *DB) writer() {
	defer db.wg.Done()
	defer close(db.logs.q)
	batch := make([]*op, 0, db.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-db.ops:
			batch = append(batch, o)
		case <-db.quit:
			// Drain what was queued before the quit, then stop.
			for {
				select {
				case o := <-db.ops:
					db.commit([]*op{o})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < db.opts.MaxBatch {
			select {
			case o := <-db.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		db.commit(batch)
		db.finishCheckpoint()
	}
}

// commit runs a batch in one transaction and hands it to the log syncer,
// which answers every op once the commit is on disk. Ops rarely fail, so
// the batch runs optimistically with no savepoints (SQLite writes every
// page a savepoint touches to a statement journal); when one op fails, the
// transaction is rolled back, the rest are committed without it, and it is
// run alone, so it fails by itself.
func (db *DB) commit(batch []*op) {
	live := make([]*op, 0, len(batch))
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.done <- engine.Wrap(engine.EUNAVAILABLE, err, "request cancelled before it was stored")
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	failed, n, err := db.runAll(live)
	switch {
	case err == nil:
		db.logs.q <- flushed{ops: live, n: n}
	case failed < 0 || len(live) == 1:
		// The transaction itself failed (begin, commit, a full disk):
		// nothing in it is stored. A commit that failed still took a
		// number, which reads wait on.
		if n > 0 {
			db.logs.q <- flushed{n: n}
		}
		for _, o := range live {
			o.done <- err
		}
	default:
		rest := append(append(make([]*op, 0, len(live)-1), live[:failed]...), live[failed+1:]...)
		db.commit(rest)
		db.commit(live[failed : failed+1])
	}
}

// runAll runs ops in one transaction. On an op's error it rolls back and
// returns that op's index; on a transaction error, -1. n is the number the
// commit took (0 when it was never tried).
func (db *DB) runAll(ops []*op) (failed int, n int64, err error) {
	ctx := context.Background()
	tx, err := db.hot.conn.BeginTx(ctx, nil)
	if err != nil {
		return -1, 0, storeError(err, "cannot begin a write transaction")
	}
	// The write lock is held from here: no other process commits until
	// this transaction ends, so one check per batch suffices.
	var version int64
	if err := db.wrap(tx).queryRow(ctx, qDataVersion).Scan(&version); err != nil {
		tx.Rollback()
		return -1, 0, storeError(err, "cannot begin a write transaction")
	}
	if version != db.cache.version {
		db.cache.clear()
		db.cache.version = version
	}
	for i, o := range ops {
		if !o.keepsCache {
			db.cache.clear()
		}
		if err := o.fn(tx); err != nil {
			tx.Rollback()
			db.cache.clear()
			return i, 0, err
		}
	}
	// The number comes before the commit makes the batch visible: a read
	// that sees it then waits for its flush (see awaitDurable).
	n = db.logs.issued.Add(1)
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		db.cache.clear()
		return -1, n, storeError(err, "cannot commit")
	}
	db.counters.commits.Add(1)
	db.counters.writes.Add(int64(len(ops)))
	return -1, n, nil
}

// storeError classifies a database error. Only what may pass when retried
// (busy, locked, full, read-only, I/O, out of memory, a cancelled request)
// is EUNAVAILABLE, so the provider retries; anything else, a constraint
// violated or a statement that does not fit the schema, is a bug no retry
// mends, and is EINTERNAL. An *engine.Error passes through.
func storeError(err error, msg string) error {
	var e *engine.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sql.ErrConnDone) {
		return engine.Wrap(engine.EUNAVAILABLE, err, "the store cannot commit right now (%s); retry", msg)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL,
			sqlite3.SQLITE_INTERRUPT:
			return engine.Wrap(engine.EUNAVAILABLE, err, "the store cannot commit right now (%s); retry", msg)
		}
	}
	return engine.Wrap(engine.EINTERNAL, err, "the store failed (%s)", msg)
}

// IsReadOnly reports whether err is SQLite refusing a write to a file it
// could open only for reading.
func IsReadOnly(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY
}

// timeLayout is fixed-width so stored times sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

func parseTime(s sql.NullString) time.Time {
	if !s.Valid || s.String == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeLayout, s.String)
	if err != nil {
		t, _ = time.Parse(time.RFC3339Nano, s.String)
	}
	return t
}
