package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
)

// TestStoreError_OnlyTransientErrorsAreUnavailable: a provider retries on
// 503, so only an error a retry may mend is unavailable; a constraint
// violated is a bug, and internal.
func TestStoreError_OnlyTransientErrorsAreUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "orderstate.db")
	db, err := Open(ctx, path, Options{BusyTimeout: time.Millisecond})
	require.NoError(t, err)
	defer db.Close()

	var violation error
	require.Error(t, db.Update(ctx, func(tx *sql.Tx) error {
		_, violation = tx.ExecContext(ctx, `INSERT INTO watermarks (name, at) VALUES (NULL, 'x')`)
		return violation
	}))
	require.Error(t, violation)
	require.Equal(t, engine.EINTERNAL, engine.ErrorCode(storeError(violation, "test")))

	var missing error
	require.Error(t, db.Update(ctx, func(tx *sql.Tx) error {
		_, missing = tx.ExecContext(ctx, `UPDATE no_such_table SET x = 1`)
		return missing
	}))
	require.Equal(t, engine.EINTERNAL, engine.ErrorCode(storeError(missing, "test")))

	// Another process holds the write lock: busy, which passes.
	other, err := sql.Open("sqlite", dsn(path, time.Millisecond, roleWriter))
	require.NoError(t, err)
	defer other.Close()
	conn, err := other.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
	require.NoError(t, err)
	defer conn.ExecContext(ctx, `ROLLBACK`)
	require.Equal(t, engine.EUNAVAILABLE, engine.ErrorCode(db.Update(ctx, func(tx *sql.Tx) error { return nil })),
		"the writer cannot begin while another process writes")
	third, err := sql.Open("sqlite", dsn(path, time.Millisecond, roleWriter))
	require.NoError(t, err)
	defer third.Close()
	_, busy := third.ExecContext(ctx, `INSERT INTO watermarks (name, at) VALUES ('b', 'x')`)
	require.Error(t, busy)
	require.Equal(t, engine.EUNAVAILABLE, engine.ErrorCode(storeError(busy, "test")))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.Equal(t, engine.EUNAVAILABLE, engine.ErrorCode(storeError(cancelled.Err(), "test")))
}

// TestUpdate_CloseRacingWritersNeverHangs: writers that passed the
// shutdown check while Close runs are all answered, never left waiting on
// a writer that has gone.
func TestUpdate_CloseRacingWritersNeverHangs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for round := range 100 {
		db, err := Open(ctx, filepath.Join(t.TempDir(), "orderstate.db"), Options{})
		require.NoError(t, err)
		var wg sync.WaitGroup
		start := make(chan struct{})
		// Half the writers give up at once (their request was cancelled),
		// so they call again and again across the moment Close stops the
		// writer.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		for i := range 16 {
			wg.Go(func() {
				<-start
				c := ctx
				if i%2 == 0 {
					c = cancelled
				}
				for {
					err := db.Update(c, func(tx *sql.Tx) error { return nil })
					if engine.ErrorCode(err) == engine.ESHUTDOWN {
						return
					}
				}
			})
		}
		close(start)
		time.Sleep(time.Millisecond)
		require.NoError(t, db.Close())
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: writers still waiting 10s after Close returned", round)
		}
	}
}
