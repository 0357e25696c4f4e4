package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine/postgres"
	"github.com/orderstate/orderstate/engine/postgres/pgtest"
	"github.com/orderstate/orderstate/engine/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t testing.TB, now func() time.Time) *postgres.DB {
	t.Helper()
	url := pgtest.Shared(t).NewDatabase(t)
	db, err := postgres.Open(context.Background(), url, postgres.Options{Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, now func() time.Time) storetest.Store { return open(t, now) })
}
