package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderstate/orderstate/engine"

	"github.com/stretchr/testify/require"

	sm "github.com/orderstate/orderstate/statemachine"
)

func paidEvent(id string) engine.Event { return testEvent(id, sm.KindPaid, "chk_"+id, 100) }

// A write is answered only after the log flush that follows its commit has
// returned: with the disk held, the writer goes on committing, but nobody
// hears back.
func TestLogSyncer_AnswersOnlyAfterTheFlush(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{})
	require.NoError(t, err)
	defer db.Close()

	entered, release := make(chan struct{}, 16), make(chan struct{})
	db.logs.flush = func(f *os.File) error {
		entered <- struct{}{}
		<-release
		return datasync(f)
	}
	answered := make(chan error, 1)
	go func() { _, err := db.Ingest(ctx, paidEvent("e1"), testRequest); answered <- err }()
	<-entered
	select {
	case err := <-answered:
		t.Fatalf("answered (%v) while its flush was still running", err)
	case <-time.After(50 * time.Millisecond):
	}
	// The commit is already made: another write commits behind it while
	// the first flush waits.
	second := make(chan error, 1)
	go func() { _, err := db.Ingest(ctx, paidEvent("e2"), testRequest); second <- err }()
	require.Eventually(t, func() bool { return db.WriterStats().Commits == 2 }, 5*time.Second, time.Millisecond)
	close(release)
	require.NoError(t, <-answered)
	require.NoError(t, <-second)
	require.GreaterOrEqual(t, db.WriterStats().Syncs, int64(2), "the first flush and the one covering the second write")
}

// A failed flush may have lost what the kernel held: the writes it covered
// are answered with the error, and the store takes no write after it,
// /readyz included, until it is restarted. What reached the disk is then
// read back as usual.
func TestLogSyncer_AFailedFlushStopsWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(ctx, path, Options{})
	require.NoError(t, err)
	_, err = db.Ingest(ctx, paidEvent("before"), testRequest)
	require.NoError(t, err)

	eio := errors.New("input/output error")
	db.logs.flush = func(*os.File) error { return eio }
	_, err = db.Ingest(ctx, paidEvent("lost"), testRequest)
	require.ErrorIs(t, err, eio)
	require.Equal(t, engine.EUNAVAILABLE, engine.ErrorCode(err))
	require.Contains(t, err.Error(), "restart orderstate")

	db.logs.flush = datasync // the disk is back, the store is not
	_, err = db.Ingest(ctx, paidEvent("after"), testRequest)
	require.ErrorIs(t, err, eio)
	require.Error(t, db.Ping(ctx))
	_, err = db.Order(ctx, "missing")
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err), "reads still work")
	require.NoError(t, db.Close())

	db, err = Open(ctx, path, Options{})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Ping(ctx))
	_, err = db.Ingest(ctx, paidEvent("after"), testRequest)
	require.NoError(t, err)
}
