package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/orderstate/orderstate/engine"
)

// stmtCache keeps the order view's statements prepared for the read pool:
// every GET of an order runs the same few, and preparing them each time
// costs more than running them. (The writer's are hotStmts.)
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, queries []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		s, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		c.m[q] = s
	}
	return nil
}

func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.m {
		s.Close()
	}
	c.m = nil
}

// wtx is a write transaction whose statements come from the cache.
type wtx struct {
	*sql.Tx
	db *DB
}

func (db *DB) wrap(tx *sql.Tx) *wtx { return &wtx{Tx: tx, db: db} }

// ExecContext runs a hot statement on the driver connection (see
// hotStmts), anything else through the transaction.
func (t *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := t.db.hot.stmts[query]; s != nil {
		return t.db.hot.exec(s, args)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

// rowScanner is a *sql.Row or a hotRow.
type rowScanner interface{ Scan(dest ...any) error }

// rowIter is a *sql.Rows or a *hotRows.
type rowIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// queryRow is QueryRowContext, on the driver connection for a hot query.
func (t *wtx) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	if s := t.db.hot.stmts[query]; s != nil {
		rows, err := t.db.hot.query(s, args)
		return hotRow{rows: rows, err: err}
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// query is QueryContext, on the driver connection for a hot query.
func (t *wtx) query(ctx context.Context, query string, args ...any) (rowIter, error) {
	if s := t.db.hot.stmts[query]; s != nil {
		return t.db.hot.query(s, args)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

// querier is what read helpers need from a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rtx is a read transaction whose hot statements come from the read
// cache; the pool prepares each on a connection the first time it is used
// there.
type rtx struct {
	*sql.Tx
	db *DB
}

func (db *DB) rwrap(tx *sql.Tx) *rtx { return &rtx{Tx: tx, db: db} }

func (t *rtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := t.db.rstmts.get(query); s != nil {
		return t.Tx.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *rtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := t.db.rstmts.get(query); s != nil {
		return t.Tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// The order view's statements, prepared once for the read pool.
const (
	qTimeline = `SELECT id, provider_event_id, provider_type, kind, result, COALESCE(from_state, ''),
		COALESCE(to_state, ''), amount, COALESCE(currency, ''), COALESCE(mode, ''), occurred_at, received_at, out_of_order, unsigned, source
		FROM events WHERE order_ref = ? ORDER BY id`
	qOrderByOrderID  = `SELECT ` + orderColumns + ` FROM orders WHERE order_id = ?`
	qOrderByCheckout = `SELECT ` + orderColumns + ` FROM orders WHERE id = (SELECT order_ref FROM order_aliases WHERE provider = ? AND external_id = ?)`
)

func readQueries() []string {
	perOrder, _ := anomalyQuery(engine.AnomalyFilter{OrderRef: 1})
	return []string{qTimeline, qOrderByOrderID, qOrderByCheckout, perOrder}
}
