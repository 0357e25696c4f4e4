package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
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

// A read never shows what a power cut could take back: one that sees a
// commit whose flush is still running waits for it, and a read with
// nothing unflushed in view does not wait at all.
func TestReads_WaitForTheFlushOfWhatTheySee(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Ingest(ctx, testEvent("c1", sm.KindCheckoutCreated, "chk_e1", 0), testRequest)
	require.NoError(t, err)
	before, err := db.OrderByCheckout(ctx, "tazapay", "chk_e1")
	require.NoError(t, err, "nothing unflushed: the read does not wait")
	require.Equal(t, sm.Pending, before.State)

	entered, release := make(chan struct{}, 16), make(chan struct{})
	db.logs.flush = func(f *os.File) error {
		entered <- struct{}{}
		<-release
		return datasync(f)
	}
	answered := make(chan error, 1)
	go func() { _, err := db.Ingest(ctx, paidEvent("e1"), testRequest); answered <- err }()
	<-entered // committed, visible to readers, not yet on disk
	read := make(chan *engine.Order, 1)
	go func() {
		o, err := db.OrderByCheckout(ctx, "tazapay", "chk_e1")
		if err != nil {
			t.Error(err)
		}
		read <- o
	}()
	select {
	case o := <-read:
		close(release) // so the store can close
		<-answered
		t.Fatalf("the read answered %s while the flush of what it saw was still running", o.State)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-answered)
	require.Equal(t, sm.Paid, (<-read).State)

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	release = make(chan struct{})
	go func() { _, err := db.Ingest(ctx, paidEvent("e2"), testRequest); answered <- err }()
	<-entered
	_, err = db.Anomalies(short, engine.AnomalyFilter{})
	require.Equal(t, engine.EUNAVAILABLE, engine.ErrorCode(err), "a read that cannot wait for the flush answers retry, not what may be lost")
	short, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = db.OpenAnomalyCounts(short)
	require.Equal(t, engine.EUNAVAILABLE, engine.ErrorCode(err), "the metrics' count of open anomalies is a read like the others")
	close(release)
	require.NoError(t, <-answered)
}

// The answer to an acknowledgement is read after the ack is on disk, and
// may show later writes: the order's new state, say. Like every read it
// waits for their flush, so it never shows a state a power cut could take
// back.
func TestAckAnomaly_AnswerWaitsForTheFlushOfWhatItShows(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Ingest(ctx, paidEvent("e1"), testRequest)
	require.NoError(t, err)
	_, err = db.Ingest(ctx, testEvent("c1", sm.KindCheckoutCreated, "chk_e1", 0), testRequest)
	require.NoError(t, err)
	list, err := db.Anomalies(ctx, engine.AnomalyFilter{Kind: "out_of_order"})
	require.NoError(t, err)
	require.Len(t, list, 1)

	// The flush that covers the ack returns only once a refund of the
	// order has committed behind it; the refund's own flush is held.
	refunded := make(chan error, 1)
	entered, release := make(chan struct{}, 16), make(chan struct{})
	flushes := 0
	db.logs.flush = func(f *os.File) error {
		flushes++ // the syncer's goroutine alone calls it
		if flushes > 1 {
			entered <- struct{}{}
			<-release
			return datasync(f)
		}
		commits := db.WriterStats().Commits
		go func() {
			_, err := db.Ingest(ctx, testEvent("r1", sm.KindRefunded, "chk_e1", 40), testRequest)
			refunded <- err
		}()
		for db.WriterStats().Commits == commits {
			time.Sleep(time.Millisecond)
		}
		return datasync(f)
	}
	type answer struct {
		a   *engine.Anomaly
		err error
	}
	acked := make(chan answer, 1)
	go func() { a, err := db.AckAnomaly(ctx, list[0].ID, "seen"); acked <- answer{a, err} }()
	<-entered // the ack is on disk, the refund visible and not
	select {
	case got := <-acked:
		close(release)
		<-refunded
		t.Fatalf("the ack answered (order %s, %v) while the flush of the refund it showed was still running", got.a.State, got.err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-refunded)
	got := <-acked
	require.NoError(t, got.err)
	require.Equal(t, engine.StatusAcknowledged, got.a.Status)
	require.Equal(t, sm.PartiallyRefunded, got.a.State)
}

// A read waiting for the flush of what it saw has let its snapshot go: the
// log can be copied into the database and start over meanwhile, which a
// reader holding a snapshot prevents.
func TestReads_WaitWithoutHoldingTheLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(ctx, path, Options{})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Ingest(ctx, testEvent("c1", sm.KindCheckoutCreated, "chk_e1", 0), testRequest)
	require.NoError(t, err)

	entered, release := make(chan struct{}, 16), make(chan struct{})
	db.logs.flush = func(f *os.File) error {
		entered <- struct{}{}
		<-release
		return datasync(f)
	}
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // before Close, which waits for the flush
	answered := make(chan error, 1)
	go func() { _, err := db.Ingest(ctx, paidEvent("e1"), testRequest); answered <- err }()
	<-entered // committed, visible, its flush held
	read := make(chan *engine.Order, 1)
	go func() {
		o, err := db.OrderByCheckout(ctx, "tazapay", "chk_e1")
		if err != nil {
			t.Error(err)
		}
		read <- o
	}()
	time.Sleep(100 * time.Millisecond) // the read is waiting for the flush

	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(200)")
	require.NoError(t, err)
	defer other.Close()
	var busy, logged, copied int
	require.NoError(t, other.QueryRow(`PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &logged, &copied))
	select {
	case o := <-read:
		t.Fatalf("the read answered %s before the flush", o.State)
	default:
	}
	require.Zero(t, busy, "no reader holds the log while it waits (%d of %d frames copied)", copied, logged)
	releaseOnce()
	require.NoError(t, <-answered)
	require.Equal(t, sm.Paid, (<-read).State)
}
