package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/engine/storetest"
)

// The SQLite store is every store the suite tests.
var _ storetest.Store = (*sqlite.DB)(nil)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, now func() time.Time) storetest.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "orderstate.db"), sqlite.Options{Now: now})
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	})
}
