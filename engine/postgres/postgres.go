package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderstate/orderstate/engine"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Options tune a DB; the zero value is a sane default.
type Options struct {
	// Now is the clock; time.Now when nil. Every replica must run on a
	// synchronised clock: the sweep compares times different replicas
	// stamped.
	Now func() time.Time
	// Logger receives internal errors; slog.Default when nil.
	Logger *slog.Logger
}

// DB is the PostgreSQL store. Every write serialises on the orders it
// touches in the database, not in memory, so any number of processes may
// share one database; webhooks that arrive together share a transaction
// (group.go).
type DB struct {
	url    string
	pool   *pgxpool.Pool
	now    func() time.Time
	log    *slog.Logger
	closed atomic.Bool

	ingestQ    chan *ingestOp
	quit       chan struct{}
	committers sync.WaitGroup
}

// DefaultPoolSize is the connections a DB keeps open at most, unless the
// URL's pool_max_conns says otherwise.
const DefaultPoolSize = 24

// IsURL reports whether a --db value names a PostgreSQL database rather
// than a SQLite file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// migrationLock is the advisory lock key that serialises migrations among
// replicas starting together.
const migrationLock = 0x6f72646572737461 // "ordersta"

// Open connects to the database at url (a postgres:// URL, with pool size,
// statement timeout and TLS as pgx takes them: pool_max_conns,
// statement_timeout, sslmode), applies pending migrations under an
// advisory lock, and returns the store.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, engine.Wrap(engine.EINVALID, err, "database URL %s cannot be parsed", redact(url))
	}
	if !strings.Contains(url, "pool_max_conns=") {
		// Ingest holds at most a few connections (its committers, and
		// webhooks stored alone after a group failed); the rest serve
		// reads, registrations and the sweep. Three replicas at this size
		// fit in a server's default hundred connections.
		cfg.MaxConns = DefaultPoolSize
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, engine.Wrap(engine.EUNAVAILABLE, err, "cannot connect to %s", redact(url))
	}
	db := &DB{url: url, pool: pool, log: opts.Logger,
		// PostgreSQL keeps microseconds: times are cut to them before they
		// are stored, so what is read back compares equal to what was
		// written.
		now: func() time.Time { return opts.Now().UTC().Truncate(time.Microsecond) }}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	db.startCommitters()
	return db, nil
}

// redact hides a URL's password from messages.
func redact(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil || cfg.Password == "" {
		return url
	}
	return strings.Replace(url, ":"+cfg.Password+"@", ":xxxxx@", 1)
}

func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "cannot connect to %s", redact(db.url))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "cannot take the migration lock")
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "cannot create the migrations table")
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	rows, err := conn.Query(ctx, `SELECT name FROM migrations ORDER BY name`)
	if err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "cannot read the migrations table")
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return engine.Wrap(engine.EUNAVAILABLE, err, "cannot read the migrations table")
	}
	if err := engine.CheckSchema("database "+redact(db.url), applied, names); err != nil {
		return err
	}
	for _, name := range names {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM migrations WHERE name = $1`, name).Scan(&n); err != nil || n > 0 {
				return err
			}
			body, err := fs.ReadFile(migrationFS, name)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO migrations (name, applied_at) VALUES ($1, $2)`, name, db.now())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// SchemaVersion is the schema version of this build's PostgreSQL store:
// that of its newest migration.
func SchemaVersion() int {
	names, _ := fs.Glob(migrationFS, "migrations/*.sql")
	v := 0
	for _, n := range names {
		v = max(v, engine.SchemaVersion(n))
	}
	return v
}

// Close closes the pool; calls after it answer ESHUTDOWN, a code that
// makes the caller retry, as a provider does on the 503 it maps to.
func (db *DB) Close() error {
	if db.closed.CompareAndSwap(false, true) {
		close(db.quit)
		db.committers.Wait()
		db.pool.Close()
	}
	return nil
}

func (db *DB) closedError() error {
	if db.closed.Load() {
		return engine.Errorf(engine.ESHUTDOWN, "orderstate is shutting down; retry")
	}
	return nil
}

// Now is the store's clock, in UTC.
func (db *DB) Now() time.Time { return db.now() }

// Ping checks the store can be written: /readyz.
func (db *DB) Ping(ctx context.Context) error {
	return db.write(ctx, nil, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO watermarks (name, at) VALUES ('readyz', $1)
			ON CONFLICT (name) DO UPDATE SET at = excluded.at`, db.now())
		return err
	})
}

// attempts bounds how often a write that lost a race (a deadlock, or an id
// another replica inserted first) is run again.
const attempts = 8

// write runs fn in a write transaction, first taking the advisory locks of
// keys in a fixed order: every write that may touch an order names the
// provider ids and shop references it is about, so two replicas handling
// events of one order take turns. fn may run more than once.
func (db *DB) write(ctx context.Context, keys []string, fn func(pgx.Tx) error) error {
	if err := db.closedError(); err != nil {
		return err
	}
	locks := lockIDs(keys)
	var err error
	for range attempts {
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			if len(locks) > 0 {
				if _, err := tx.Exec(ctx, qLock, locks); err != nil {
					return err
				}
			}
			return fn(tx)
		})
		if !retryable(err) {
			break
		}
	}
	return storeError(err, "write")
}

// qLock takes advisory locks in the order of the array: unnest yields its
// elements in order, and a volatile function in the select list is
// evaluated after any sort.
const qLock = `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, i) ORDER BY i`

// lockIDs hashes keys to advisory lock ids, each once, ascending: taken in
// one order, they cannot deadlock.
func lockIDs(keys []string) []int64 {
	ids := make([]int64, 0, len(keys))
	for _, k := range keys {
		h := fnv.New64a()
		h.Write([]byte(k))
		ids = append(ids, int64(h.Sum64()))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func idKey(provider, id string) string         { return "id\x00" + provider + "\x00" + id }
func referenceKey(provider, ref string) string { return "ref\x00" + provider + "\x00" + ref }

// retryable reports whether a transaction failed only for losing a race
// with another, so running it again will pass.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return true
	case "23505": // unique_violation: another replica inserted the same id first
		return true
	}
	return false
}

// storeError classifies a database error. What may pass when retried (the
// server gone or starting, a connection lost, resources exhausted, a
// statement timeout, a lock not granted) is EUNAVAILABLE, so the provider
// retries; anything else is a bug no retry mends, EINTERNAL. An
// *engine.Error passes through, and nil stays nil.
func storeError(err error, msg string) error {
	if err == nil {
		return nil
	}
	var e *engine.Error
	if errors.As(err, &e) {
		return err
	}
	if unavailable(err) {
		return engine.Wrap(engine.EUNAVAILABLE, err, "the store cannot commit right now (%s); retry", msg)
	}
	return engine.Wrap(engine.EINTERNAL, err, "the store failed (%s)", msg)
}

func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),       // insufficient resources: disk full, too many connections
			strings.HasPrefix(pe.Code, "57P"),      // admin shutdown, crash shutdown, cannot connect now
			pe.Code == "57014",                     // query_canceled: a statement timeout
			pe.Code == "55P03",                     // lock_not_available
			pe.Code == "40001", pe.Code == "40P01", // lost races past the retries
			pe.Code == "25006", strings.HasPrefix(pe.Code, "58"): // read-only transaction, system error (I/O)
			return true
		}
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) || errors.As(err, &ce) || pgconn.Timeout(err) ||
		pgconn.SafeToRetry(err)
}

// nullTime is t for a nullable column: nil when zero.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
