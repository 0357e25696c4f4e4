package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/orderstate/orderstate/engine"

	"github.com/stretchr/testify/require"

	sm "github.com/orderstate/orderstate/statemachine"
)

// cacheMatchesStore fails the test when any order the writer holds differs
// from its row in the file. It runs as a write so it sees the cache from
// the writer goroutine, between batches.
func cacheMatchesStore(t *testing.T, db *DB) (cached int) {
	t.Helper()
	ctx := context.Background()
	// Compared in the writer, reported here: a failing assertion must not
	// end the writer goroutine.
	var diffs []string
	require.NoError(t, db.update(ctx, func(stx *sql.Tx) error {
		tx := db.wrap(stx)
		cached, diffs = len(db.cache.rows), nil
		for ref, e := range db.cache.rows {
			o := e.row
			stored, err := scanOrder(tx.QueryRowContext(ctx, qOrderByID, ref))
			if err != nil {
				return fmt.Errorf("cached order %d: %w", ref, err)
			}
			if !reflect.DeepEqual(*stored, *o) {
				diffs = append(diffs, fmt.Sprintf("order %d: cached %+v, stored %+v", ref, *o, *stored))
			}
		}
		for key, ref := range db.cache.aliases {
			var stored int64
			err := tx.QueryRowContext(ctx, `SELECT order_ref FROM order_aliases WHERE provider = ? AND external_id = ?`, key.provider, key.id).Scan(&stored)
			if err != nil || stored != ref {
				diffs = append(diffs, fmt.Sprintf("alias %q: cached %d, stored %d (%v)", key, ref, stored, err))
			}
		}
		return nil
	}, true))
	require.Empty(t, diffs, "the writer's cache differs from the store")
	return cached
}

func testEvent(id string, kind sm.Kind, checkout string, amount int64, refs ...string) engine.Event {
	return engine.Event{Provider: "tazapay", EventID: id, DedupeKey: id, Type: "test." + string(kind), Kind: kind,
		CheckoutID: checkout, Refs: refs, Amount: amount, Currency: "USD", Mode: engine.ModeLive}
}

var testRequest = &engine.Request{Header: http.Header{}, Body: []byte(`{}`)}

// TestOrderCache_FollowsEveryWrite drives every kind of write through the
// store and holds the writer's cached orders to the file after each: the
// cache may only ever save a read, never change an answer.
func TestOrderCache_FollowsEveryWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Second); return now }
	path := filepath.Join(t.TempDir(), "orderstate.db")
	db, err := Open(ctx, path, Options{Now: clock})
	require.NoError(t, err)
	defer db.Close()

	ingest := func(ev engine.Event) engine.IngestResult {
		t.Helper()
		res, err := db.Ingest(ctx, ev, testRequest)
		require.NoError(t, err)
		return res
	}
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "o1", Provider: "tazapay", CheckoutID: "chk_1", Amount: 500, Currency: "USD"})
	require.NoError(t, err)
	require.Equal(t, 1, cacheMatchesStore(t, db), "a registered order is cached as stored")
	ingest(testEvent("e1", sm.KindCheckoutCreated, "chk_1", 0))
	require.Equal(t, 1, cacheMatchesStore(t, db))

	// Served from the cache, then checked against the file.
	res := ingest(testEvent("e2", sm.KindPaymentProcessing, "chk_1", 0))
	require.Equal(t, sm.Processing, res.State)
	ingest(testEvent("e2", sm.KindPaymentProcessing, "chk_1", 0)) // duplicate
	cacheMatchesStore(t, db)

	// A redirect and an acknowledgement write around the cache.
	_, err = db.ReportRedirect(ctx, "o1", engine.RedirectSuccess)
	require.NoError(t, err)
	cacheMatchesStore(t, db)
	res = ingest(testEvent("e3", sm.KindPaid, "chk_1", 500))
	require.Equal(t, sm.Paid, res.State)
	cacheMatchesStore(t, db)

	// A webhook before registration, then the registration.
	ingest(testEvent("e4", sm.KindCheckoutCreated, "chk_2", 0))
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "o2", Provider: "tazapay", CheckoutID: "chk_2", Amount: 700, Currency: "EUR"})
	require.NoError(t, err)
	res = ingest(testEvent("e5", sm.KindPaid, "chk_2", 700))
	require.Contains(t, res.Anomalies, engine.AnomalyCurrencyMismatch, "the registration reached the order the webhook made")
	cacheMatchesStore(t, db)

	// An attempt that knows only the payin id makes an order apart; the
	// event naming both ids merges them.
	_, err = db.RegisterOrder(ctx, engine.Registration{OrderID: "o3", Provider: "tazapay", CheckoutID: "chk_3", Amount: 900, Currency: "USD"})
	require.NoError(t, err)
	ingest(testEvent("e6", sm.KindCheckoutCreated, "chk_3", 0))
	ingest(testEvent("e7", sm.KindPaymentAttemptFailed, "pay_3", 0))
	ingest(testEvent("e8", sm.KindPaid, "chk_3", 900, "pay_3"))
	cacheMatchesStore(t, db)
	res = ingest(testEvent("e9", sm.KindRefunded, "pay_3", 900))
	require.Equal(t, sm.Refunded, res.State, "the payin id names the merged order")
	require.Equal(t, "o3", res.OrderID)
	cacheMatchesStore(t, db)

	// Another process changes an order the cache holds: the next batch
	// must apply a webhook to the changed row, not to the cached one.
	ingest(testEvent("e10", sm.KindCheckoutCreated, "chk_1", 0))
	require.GreaterOrEqual(t, cacheMatchesStore(t, db), 2)
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	_, err = other.Exec(`UPDATE orders SET state = 'failed', captured = 0 WHERE order_id = 'o1'`)
	require.NoError(t, err)
	require.NoError(t, other.Close())
	res = ingest(testEvent("e11", sm.KindPaid, "chk_1", 500))
	require.Equal(t, sm.NeedsReview, res.State, "the event met the external write (paid on a failed order is a conflict), not the cached paid")
	cacheMatchesStore(t, db)

	// A batch that rolls back must not leave its changes in the cache: hold
	// the writer, queue a refund and a failing write behind it so they share
	// a batch, then let go.
	hold, held := make(chan struct{}), make(chan struct{})
	go db.update(ctx, func(*sql.Tx) error { close(held); <-hold; return nil }, true)
	<-held
	refunded := make(chan error, 1)
	go func() {
		_, err := db.Ingest(ctx, testEvent("e12", sm.KindRefunded, "chk_2", 300), testRequest)
		refunded <- err
	}()
	require.Eventually(t, func() bool { return len(db.ops) == 1 }, 5*time.Second, time.Millisecond)
	failed := make(chan error, 1)
	go func() {
		failed <- db.update(ctx, func(*sql.Tx) error { return engine.Errorf(engine.EINVALID, "refused") }, true)
	}()
	require.Eventually(t, func() bool { return len(db.ops) == 2 }, 5*time.Second, time.Millisecond)
	close(hold)
	require.NoError(t, <-refunded)
	require.Error(t, <-failed)
	o, err := db.Order(ctx, "o2")
	require.NoError(t, err)
	require.Equal(t, int64(300), o.Refunded, "the refund is applied once although its first run was rolled back")
	require.Equal(t, sm.PartiallyRefunded, o.State)
	cacheMatchesStore(t, db)
}

func TestOrderCache_IsBounded(t *testing.T) {
	t.Parallel()
	c := newOrderCache(3)
	for i := range int64(10) {
		c.put(&orderRow{ref: i + 1}, "p", []string{fmt.Sprint("chk_", i)})
		require.LessOrEqual(t, len(c.rows), 3)
		require.LessOrEqual(t, len(c.aliases), 12)
	}
	require.NotNil(t, c.lookup("p", []string{"chk_9"}), "the order just put is kept")
	found := 0
	for i := range 10 {
		if c.lookup("p", []string{fmt.Sprint("chk_", i)}) != nil {
			found++
		}
	}
	require.Equal(t, 3, found, "a full cache stays full")
	c.put(&orderRow{ref: 42}, "p", []string{"a"})
	c.put(&orderRow{ref: 43}, "p", []string{"b"})
	require.Nil(t, c.lookup("p", []string{"a", "b"}), "ids naming different orders are the store's to resolve")
}
