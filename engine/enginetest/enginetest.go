// Package enginetest holds test support for code that stores through the
// engine: counting every table's rows, so a test can show that a refused
// request changed nothing.
package enginetest

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the driver the store uses
)

// CountRows counts the rows of every table of the store at path, through a
// read-only connection of its own.
func CountRows(tb testing.TB, path string) map[string]int {
	tb.Helper()
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	require.NoError(tb, err)
	defer conn.Close()
	rows, err := conn.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	require.NoError(tb, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(tb, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(tb, rows.Close())
	out := map[string]int{}
	for _, tbl := range tables {
		var n int
		require.NoError(tb, conn.QueryRow(fmt.Sprintf(`SELECT COUNT(*) FROM %q`, tbl)).Scan(&n))
		out[tbl] = n
	}
	return out
}
