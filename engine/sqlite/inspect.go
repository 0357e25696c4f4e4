package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
)

// CountRows counts the rows of every table of the store at path, through a
// read-only connection of its own, so a test or a tool can show that a
// refused request changed nothing while a server holds the store open.
func CountRows(ctx context.Context, path string) (map[string]int, error) {
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("count rows of %s: %w", path, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		return nil, fmt.Errorf("count rows of %s: %w", path, err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, tbl := range tables {
		var n int
		if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %q`, tbl)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", tbl, err)
		}
		out[tbl] = n
	}
	return out, nil
}
