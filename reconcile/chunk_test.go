package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	"github.com/orderstate/orderstate/reconcile"
	sm "github.com/orderstate/orderstate/statemachine"
)

// chunkStore counts the sweep's transactions and runs between runs before
// every one after the first, the way a webhook commits between two chunks.
type chunkStore struct {
	*sqlite.DB
	calls   int
	between func(call int) error
}

func (s *chunkStore) Sweep(ctx context.Context, fn func(engine.SweepTx) error) error {
	s.calls++
	if s.calls > 1 && s.between != nil {
		if err := s.between(s.calls); err != nil {
			return err
		}
	}
	return s.DB.Sweep(ctx, fn)
}

// chunked registers n orders a second apart, the first redirected ones back
// with success, and moves the clock past every threshold.
func chunked(t *testing.T, n, redirected, chunk int) (*env, *chunkStore, *reconcile.Reconciler) {
	e := setup(t, reconcile.Config{})
	for i := range n {
		id := fmt.Sprintf("o%02d", i)
		e.register(id, "tazapay", "c"+id, 100, "USD")
		if i < redirected {
			e.redirect(id, engine.RedirectSuccess)
		}
		e.clock.Add(time.Second)
	}
	e.clock.Add(25 * time.Hour)
	cs := &chunkStore{DB: e.db}
	rec, err := reconcile.New(cs, reconcile.Config{SweepChunk: chunk}, e.clock.Now, quiet())
	require.NoError(t, err)
	return e, cs, rec
}

// openKinds counts the store's open anomalies by kind.
func openKinds(t *testing.T, e *env) map[string]int {
	as, err := e.db.Anomalies(e.ctx, engine.AnomalyFilter{Status: engine.StatusOpen})
	require.NoError(t, err)
	out := map[string]int{}
	for _, a := range as {
		out[a.Kind]++
	}
	return out
}

func TestSweep_CommitsInChunks(t *testing.T) {
	t.Parallel()
	e, cs, rec := chunked(t, 10, 4, 3)
	// The last order registered is paid once the first chunk has
	// committed: the chunk that reaches it must see it paid.
	began := e.clock.Now()
	cs.between = func(call int) error {
		e.clock.Add(time.Second)
		if call == 2 {
			e.ingest(e.ev("tazapay", "co09", sm.KindPaid, 100))
		}
		return nil
	}

	res, err := rec.Sweep(e.ctx)
	require.NoError(t, err)
	// 9 stuck and 4 missing_webhook, 3 a transaction: 5 transactions.
	require.Len(t, changes(res, reconcile.Raised), 13)
	require.Equal(t, 5, res.Transactions)
	require.Equal(t, 5, cs.calls)
	require.Equal(t, map[string]int{engine.AnomalyStuck: 9, engine.AnomalyMissingWebhook: 4}, openKinds(t, e))
	require.Empty(t, e.anomalies("o09"), "paid between two chunks, before its chunk ran")
	require.Equal(t, began, res.At, "the sweep's time is its first transaction's")

	again, err := rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Empty(t, again.Changes)
	require.Equal(t, 1, again.Transactions)

	// Resolutions are chunked the same way: the customers who came back
	// with success say they cancelled after all.
	cs.between = nil
	for i := range 4 {
		e.redirect(fmt.Sprintf("o%02d", i), engine.RedirectCancel)
	}
	res, err = rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Len(t, changes(res, reconcile.Resolved), 4)
	require.Equal(t, 2, res.Transactions)
	require.Equal(t, map[string]int{engine.AnomalyStuck: 9}, openKinds(t, e))

	// And raises from a window of redirects, which has a cursor to move.
	for i := 10; i < 15; i++ {
		id := fmt.Sprintf("o%02d", i)
		e.register(id, "tazapay", "c"+id, 100, "USD")
		e.redirect(id, engine.RedirectSuccess)
		e.clock.Add(time.Second)
	}
	e.clock.Add(20 * time.Minute)
	res, err = rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Len(t, changes(res, reconcile.Raised), 5)
	require.Equal(t, 2, res.Transactions)
	require.Equal(t, map[string]int{engine.AnomalyStuck: 9, engine.AnomalyMissingWebhook: 5}, openKinds(t, e))
	again, err = rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Empty(t, again.Changes)
}

// TestSweep_StoppedMidwayGoesOnFromItsChunks: a sweep that fails after
// some chunks committed keeps them, and the next sweep raises only the
// rest, each anomaly once.
func TestSweep_StoppedMidwayGoesOnFromItsChunks(t *testing.T) {
	t.Parallel()
	e, cs, rec := chunked(t, 10, 4, 3)
	down := errors.New("store went away")
	cs.between = func(call int) error {
		if call == 3 {
			return down
		}
		return nil
	}
	res, err := rec.Sweep(e.ctx)
	require.ErrorIs(t, err, down)
	require.Equal(t, 2, res.Transactions)
	require.Len(t, res.Changes, 6, "what the committed transactions did")
	require.Equal(t, map[string]int{engine.AnomalyStuck: 6}, openKinds(t, e))

	cs.between = nil
	res, err = rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Len(t, changes(res, reconcile.Raised), 8)
	require.Equal(t, map[string]int{engine.AnomalyStuck: 10, engine.AnomalyMissingWebhook: 4}, openKinds(t, e))
	for i := range 10 {
		for kind, a := range e.anomalies(fmt.Sprintf("o%02d", i)) {
			require.Equal(t, 1, a.Count, "o%02d %s", i, kind)
		}
	}
}

// TestSweep_ChunksSplitOrdersOfOneInstant: orders stamped at the same
// instant are told apart by their ref, so a chunk or a page that ends among
// them neither skips nor repeats one.
func TestSweep_ChunksSplitOrdersOfOneInstant(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	for i := range 7 {
		id := fmt.Sprintf("t%02d", i)
		e.register(id, "yoco", "c"+id, 100, "ZAR")
		if i%2 == 0 {
			e.redirect(id, engine.RedirectSuccess)
		}
	}
	e.clock.Add(25 * time.Hour)
	cs := &chunkStore{DB: e.db}
	rec, err := reconcile.New(cs, reconcile.Config{SweepChunk: 2}, e.clock.Now, quiet())
	require.NoError(t, err)

	res, err := rec.Sweep(e.ctx)
	require.NoError(t, err)
	// 7 stuck and 4 missing_webhook, 2 a transaction.
	require.Len(t, changes(res, reconcile.Raised), 11)
	require.Equal(t, 6, res.Transactions)
	require.Equal(t, 7, res.Checked, "each order once, though both rules and several transactions read it")
	seen := map[string]bool{}
	for _, c := range res.Changes {
		key := c.OrderID + " " + c.Kind
		require.False(t, seen[key], "raised twice: %s", key)
		seen[key] = true
	}
	require.Equal(t, map[string]int{engine.AnomalyStuck: 7, engine.AnomalyMissingWebhook: 4}, openKinds(t, e))
}

// TestSweep_OrderChangedBehindAChunkIsRecheckedNextTime: an order the
// re-check already passed changes while the sweep goes on; however long
// the sweep takes, the next one re-checks it.
func TestSweep_OrderChangedBehindAChunkIsRecheckedNextTime(t *testing.T) {
	t.Parallel()
	e, cs, rec := chunked(t, 10, 10, 3)
	res, err := rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Len(t, changes(res, reconcile.Raised), 20)

	// Customers who came back with success say they cancelled after all:
	// no webhook is missing for them any more.
	for i := 3; i < 9; i++ {
		e.redirect(fmt.Sprintf("o%02d", i), engine.RedirectCancel)
	}
	e.clock.Add(time.Second)
	// o00 says so while the re-check is between its chunks, and long
	// after the sweep's first transaction.
	cs.calls = 0
	cs.between = func(call int) error {
		e.redirect("o00", engine.RedirectCancel)
		e.clock.Add(2 * time.Minute)
		cs.between = nil
		return nil
	}
	res, err = rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Len(t, changes(res, reconcile.Resolved), 6)
	require.Equal(t, 2, res.Transactions)
	require.Equal(t, engine.StatusOpen, e.anomalies("o00")[engine.AnomalyMissingWebhook].Status, "cancelled after the sweep began")

	e.clock.Add(5 * time.Minute)
	res, err = rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"o00/" + engine.AnomalyMissingWebhook}, changes(res, reconcile.Resolved))
}

// retryStore runs one transaction of the sweep twice, as the store does
// when a batch it was in fails: once rolled back, then for real.
type retryStore struct {
	*sqlite.DB
	calls, retry int
}

var errRolledBack = errors.New("rolled back")

func (s *retryStore) Sweep(ctx context.Context, fn func(engine.SweepTx) error) error {
	s.calls++
	if s.calls == s.retry {
		err := s.DB.Sweep(ctx, func(tx engine.SweepTx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errRolledBack
		})
		if !errors.Is(err, errRolledBack) {
			return err
		}
	}
	return s.DB.Sweep(ctx, fn)
}

// TestSweep_TransactionRunTwiceKeepsItsPlace: what a rolled-back attempt
// of a transaction read does not count as done.
func TestSweep_TransactionRunTwiceKeepsItsPlace(t *testing.T) {
	t.Parallel()
	for retry := 1; retry <= 5; retry++ {
		e, _, _ := chunked(t, 10, 4, 3)
		rs := &retryStore{DB: e.db, retry: retry}
		rec, err := reconcile.New(rs, reconcile.Config{SweepChunk: 3}, e.clock.Now, quiet())
		require.NoError(t, err)
		res, err := rec.Sweep(e.ctx)
		require.NoError(t, err)
		require.Len(t, changes(res, reconcile.Raised), 14, "retry of transaction %d", retry)
		require.Equal(t, map[string]int{engine.AnomalyStuck: 10, engine.AnomalyMissingWebhook: 4}, openKinds(t, e), "retry of transaction %d", retry)
		again, err := rec.Sweep(e.ctx)
		require.NoError(t, err)
		require.Empty(t, again.Changes)
	}
}

// TestSweep_ReadsAreChunkedToo: a transaction reads at most ten times a
// chunk of candidates, even when they need nothing raised, so a first
// sweep over many orders in flight does not hold the writer for all of
// them at once.
func TestSweep_ReadsAreChunkedToo(t *testing.T) {
	t.Parallel()
	e := setup(t, reconcile.Config{})
	for i := range 25 {
		id := fmt.Sprintf("r%02d", i)
		e.register(id, "tokenz", "c"+id, 100, "USD")
		e.clock.Add(time.Second)
	}
	cs := &chunkStore{DB: e.db}
	rec, err := reconcile.New(cs, reconcile.Config{SweepChunk: 1}, e.clock.Now, quiet())
	require.NoError(t, err)
	res, err := rec.Sweep(e.ctx)
	require.NoError(t, err)
	require.Empty(t, res.Changes, "none is stuck yet, and none came back from a redirect")
	require.Equal(t, 25, res.Checked, "each order in flight read once")
	require.Equal(t, 3, res.Transactions, "10, 10 and 5 orders read")
}

// TestSweep_LongFirstSweepLeavesNoRedirectBehind: a store's first sweep
// judges the orders in flight against each transaction's threshold as it
// passes them. One whose success redirect was too recent when passed, and
// is past the grace before the sweep ends, must be raised by a later
// sweep, however long the first one took.
func TestSweep_LongFirstSweepLeavesNoRedirectBehind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// before runs before the first sweep, between before each of
		// its transactions after the first.
		before, between func(e *env, call int)
	}{
		{"RedirectTooRecentWhenPassed", func(e *env, _ int) {
			e.register("x", "tokenz", "cx", 100, "USD")
			e.redirect("x", engine.RedirectSuccess)
			e.clock.Add(14*time.Minute + 30*time.Second)
		}, func(e *env, _ int) { e.clock.Add(time.Minute) }},
		{"RedirectReportedBehindTheScan", func(e *env, _ int) {
			e.register("x", "tokenz", "cx", 100, "USD")
			e.clock.Add(time.Second)
		}, func(e *env, call int) {
			if call == 2 {
				e.redirect("x", engine.RedirectSuccess)
				e.clock.Add(20 * time.Minute)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, reconcile.Config{})
			tc.before(e, 0)
			for i := range 25 {
				id := fmt.Sprintf("r%02d", i)
				e.register(id, "tokenz", "c"+id, 100, "USD")
			}
			cs := &chunkStore{DB: e.db}
			rec, err := reconcile.New(cs, reconcile.Config{SweepChunk: 1}, e.clock.Now, quiet())
			require.NoError(t, err)
			cs.between = func(call int) error { tc.between(e, call); return nil }
			res, err := rec.Sweep(e.ctx)
			require.NoError(t, err)
			require.Greater(t, res.Transactions, 2)
			cs.between = nil
			for range 3 {
				e.clock.Add(5 * time.Minute)
				_, err = rec.Sweep(e.ctx)
				require.NoError(t, err)
			}
			require.Contains(t, e.anomalies("x"), engine.AnomalyMissingWebhook)
		})
	}
}
