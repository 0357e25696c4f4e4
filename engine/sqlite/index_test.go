package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A merge moves the aliases of the orders it folds by order; on a store of
// a million orders a full scan of the aliases for each merge held every
// webhook behind it for seconds.
func TestMergeFindsAliasesByIndex(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "o.db"), Options{})
	require.NoError(t, err)
	defer db.Close()
	for _, q := range []string{
		`UPDATE order_aliases SET order_ref = 1 WHERE order_ref = 2`,
		`SELECT COUNT(*) FROM orders WHERE id NOT IN (SELECT order_ref FROM order_aliases)`,
	} {
		rows, err := db.read.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q)
		require.NoError(t, err)
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
			plan = append(plan, detail)
		}
		require.NoError(t, rows.Err())
		rows.Close()
		joined := strings.Join(plan, "; ")
		require.Contains(t, joined, "order_aliases_order", "%s: %s", q, joined)
	}
}
