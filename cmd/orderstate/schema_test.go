package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine/postgres"
	"github.com/orderstate/orderstate/engine/postgres/pgtest"
	"github.com/orderstate/orderstate/engine/sqlite"
)

// A binary must not serve, nor read, a store a newer release migrated: it
// refuses, naming the store's schema version and its own. The store is
// left as it was.
func TestSchemaGuard_RefusesANewerStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	future := sqlite.SchemaVersion() + 3
	name := fmt.Sprintf("migrations/%04d_from_a_newer_release.sql", future)

	path := filepath.Join(t.TempDir(), "orderstate.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: discardLogger()})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	raw, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = raw.Exec(`INSERT INTO migrations (name, applied_at) VALUES (?, '2030-01-01T00:00:00.000000000Z')`, name)
	require.NoError(t, err)
	require.NoError(t, raw.Close())

	want := fmt.Sprintf("database %s has schema version %d (migration %s), newer than version %d, the newest this build of orderstate knows",
		path, future, filepath.Base(name), sqlite.SchemaVersion())
	for _, args := range [][]string{
		{"serve", "--addr", "127.0.0.1:0", "--db", path, "--reports-dir", filepath.Join(t.TempDir(), "r")},
		{"reconcile", "--db", path},
		{"order", "--db", path, "order_1"},
	} {
		_, _, err := cli(t, nil, args...)
		require.ErrorContains(t, err, want, "%v", args)
	}

	url := pgtest.Shared(t).NewDatabase(t)
	pg, err := postgres.Open(ctx, url, postgres.Options{Logger: discardLogger()})
	require.NoError(t, err)
	require.NoError(t, pg.Close())
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	pgFuture := postgres.SchemaVersion() + 1
	pgName := fmt.Sprintf("migrations/%04d_from_a_newer_release.sql", pgFuture)
	_, err = conn.Exec(ctx, `INSERT INTO migrations (name, applied_at) VALUES ($1, now())`, pgName)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	_, _, err = cli(t, nil, "serve", "--addr", "127.0.0.1:0", "--db", url, "--reports-dir", filepath.Join(t.TempDir(), "r"))
	require.ErrorContains(t, err, fmt.Sprintf("has schema version %d (migration %s), newer than version %d, the newest this build of orderstate knows",
		pgFuture, filepath.Base(pgName), postgres.SchemaVersion()))
}
