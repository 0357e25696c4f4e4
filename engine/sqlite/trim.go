package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
)

// A Mark is how far a store reached at one moment: the last row of each
// table that grows, and the jobs' watermarks. TrimTo takes the store back
// to it, so a tool can run against a large store and leave it as it found
// it (the benchmark does, so that every run measures the same store).
type Mark struct {
	orders, events, anomalies, reports int64
	watermarks                         map[string]string
}

// Mark returns where the store is now.
func (i *Inspector) Mark(ctx context.Context) (Mark, error) {
	m := Mark{watermarks: map[string]string{}}
	for _, t := range []struct {
		table string
		to    *int64
	}{{"orders", &m.orders}, {"events", &m.events}, {"anomalies", &m.anomalies}, {"reports", &m.reports}} {
		if err := i.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM `+t.table).Scan(t.to); err != nil {
			return Mark{}, i.errorf("mark", err)
		}
	}
	rows, err := i.db.QueryContext(ctx, `SELECT name, at FROM watermarks`)
	if err != nil {
		return Mark{}, i.errorf("mark", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, at string
		if err := rows.Scan(&name, &at); err != nil {
			return Mark{}, i.errorf("mark", err)
		}
		m.watermarks[name] = at
	}
	if err := rows.Err(); err != nil {
		return Mark{}, i.errorf("mark", err)
	}
	return m, nil
}

// TrimTo takes the store at path back to m, taken from it earlier: it
// deletes every order, event (with its raw request and the order's ids),
// anomaly and report added since, puts the watermarks back as they were,
// and truncates the log. Nothing else may have the store open.
func TrimTo(ctx context.Context, path string, m Mark) error {
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return fmt.Errorf("trim %s: %w", path, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("trim %s: %w", path, err)
	}
	defer tx.Rollback()
	steps := []struct {
		q    string
		args []any
	}{
		{`DELETE FROM raw_events WHERE event_id > ?`, []any{m.events}},
		{`DELETE FROM events WHERE id > ?`, []any{m.events}},
		{`DELETE FROM order_aliases WHERE order_ref > ?`, []any{m.orders}},
		{`DELETE FROM anomalies WHERE id > ? OR order_ref > ?`, []any{m.anomalies, m.orders}},
		{`DELETE FROM orders WHERE id > ?`, []any{m.orders}},
		{`DELETE FROM reports WHERE id > ?`, []any{m.reports}},
		{`DELETE FROM watermarks`, nil},
	}
	for _, st := range steps {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("trim %s: %w", path, err)
		}
	}
	for name, at := range m.watermarks {
		if _, err := tx.ExecContext(ctx, `INSERT INTO watermarks (name, at) VALUES (?, ?)`, name, at); err != nil {
			return fmt.Errorf("trim %s: %w", path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("trim %s: %w", path, err)
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("trim %s: checkpoint: %w", path, err)
	}
	return nil
}
