package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	sm "github.com/orderstate/orderstate/statemachine"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustOpen(tb testing.TB, path string, c *clock) *sqlite.DB {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "orderstate.db")
	}
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Now: c.Now})
	require.NoError(tb, err)
	tb.Cleanup(func() { db.Close() })
	return db
}

func req(body string) *engine.Request {
	return &engine.Request{Header: http.Header{"Content-Type": {"application/json"}, "Signature": {"secret-sig"}}, Body: []byte(body)}
}

func event(id string, kind sm.Kind, checkout string, amount int64) engine.Event {
	return engine.Event{Provider: "tazapay", EventID: id, DedupeKey: id, Type: "test." + string(kind), Kind: kind,
		CheckoutID: checkout, Amount: amount, Currency: "USD", Mode: engine.ModeLive}
}

func register(t *testing.T, db *sqlite.DB, orderID, checkout string, amount int64) {
	t.Helper()
	_, err := db.RegisterOrder(context.Background(), engine.Registration{OrderID: orderID, Provider: "tazapay",
		CheckoutID: checkout, Amount: amount, Currency: "usd", Mode: engine.ModeLive})
	require.NoError(t, err)
}

// The conformance suite holds every store to refusing bad events whole
// through the interfaces; this is the same in every table of the file.
func TestIngest_RejectedEventsWriteNoRow(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	before := countRows(t, db.Path())
	for name, ev := range map[string]engine.Event{
		"NoDedupeKey": {Provider: "tazapay", Kind: sm.KindPaid, CheckoutID: "c"},
		"BadKind":     {Provider: "tazapay", DedupeKey: "x", Kind: "exploded", CheckoutID: "c"},
		"NoCheckout":  {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid},
		"Negative":    {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid, CheckoutID: "c", Amount: -5},
		"BadMode":     {Provider: "tazapay", DedupeKey: "x", Kind: sm.KindPaid, CheckoutID: "c", Mode: "prod"},
	} {
		_, err := db.Ingest(ctx, ev, req(`{}`))
		require.Equal(t, engine.EINVALID, engine.ErrorCode(err), name)
	}
	require.Equal(t, before, countRows(t, db.Path()))
}

// An event of a type nobody documented keeps its raw body, whether it
// names an order or not; the interfaces show no raw body, so the file is
// read.
func TestIngest_UnknownTypesKeepTheirRawBody(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	register(t, db, "o", "c", 100)
	for _, ev := range []engine.Event{event("u1", sm.KindUnknown, "c", 0), event("u2", sm.KindUnknown, "", 0)} {
		res, err := db.Ingest(ctx, ev, req(`{"type":"payout.created"}`))
		require.NoError(t, err)
		require.Equal(t, sm.Ignored, res.Result)
	}
	require.Equal(t, 2, countRows(t, db.Path())["raw_events"], "both bodies are kept raw")
}

// Replay finds an order whose stored state was changed behind the store's
// back, and --fix writes the state its events fold to. The conformance
// suite checks replay agrees with every store's own writes.
func TestReplay_FindsTampering(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	path := filepath.Join(t.TempDir(), "o.db")
	db := mustOpen(t, path, c)
	register(t, db, "o1", "c1", 100)
	register(t, db, "o2", "c2", 100)
	for _, ev := range []engine.Event{event("a", sm.KindPaid, "c1", 100), event("b", sm.KindRefunded, "c1", 40), event("c", sm.KindExpired, "c2", 0)} {
		_, err := db.Ingest(ctx, ev, req(`{}`))
		require.NoError(t, err)
	}
	conn, err := sql.Open("sqlite", "file:"+path)
	require.NoError(t, err)
	_, err = conn.Exec(`UPDATE orders SET state = 'paid' WHERE checkout_id = 'c2'`)
	require.NoError(t, err)
	conn.Close()
	var diffs []engine.ReplayDiff
	_, err = db.Replay(ctx, true, func(d engine.ReplayDiff) { diffs = append(diffs, d) })
	require.NoError(t, err)
	require.Len(t, diffs, 1)
	require.Equal(t, sm.Paid, diffs[0].Stored)
	require.Equal(t, sm.Expired, diffs[0].Replayed)
	o, err := db.Order(ctx, "o2")
	require.NoError(t, err)
	require.Equal(t, sm.Expired, o.State, "--fix writes the replayed state")
}

func TestStore_SurvivesReopen(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	path := filepath.Join(t.TempDir(), "o.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Now: c.Now})
	require.NoError(t, err)
	register(t, db, "o", "c", 100)
	_, err = db.Ingest(ctx, event("a", sm.KindPaid, "c", 100), req(`{}`))
	require.NoError(t, err)
	before, err := db.Order(ctx, "o")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	db = mustOpen(t, path, c)
	after, err := db.Order(ctx, "o")
	require.NoError(t, err)
	require.Equal(t, before, after)
	_, err = db.Ingest(ctx, event("a", sm.KindPaid, "c", 100), req(`{}`))
	require.NoError(t, err)
	after, err = db.Order(ctx, "o")
	require.NoError(t, err)
	require.Equal(t, sm.Duplicate, after.Events[1].Result, "dedupe survives a restart")
}

func TestGroupCommit_OneBadWriteFailsAlone(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	db := mustOpen(t, "", c)
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Update(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO watermarks (name, at) VALUES (?, 'x')`, fmt.Sprint("job", i)); err != nil {
					return err
				}
				if i%8 == 3 {
					return engine.Errorf(engine.EINVALID, "write %d refuses", i)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var n int
		require.NoError(t, openCount(t, db.Path(), fmt.Sprint("job", i), &n))
		if i%8 == 3 {
			require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
			require.Zero(t, n, "a failed write leaves nothing behind")
		} else {
			require.NoError(t, err)
			require.Equal(t, 1, n, "write %d was acknowledged, so it is stored", i)
		}
	}
}

func openCount(t *testing.T, path, name string, n *int) error {
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	require.NoError(t, err)
	defer conn.Close()
	return conn.QueryRow(`SELECT COUNT(*) FROM watermarks WHERE name = ?`, name).Scan(n)
}

// countRows counts every table's rows of the store at path.
func countRows(t *testing.T, path string) map[string]int {
	t.Helper()
	counts, err := sqlite.CountRows(context.Background(), path)
	require.NoError(t, err)
	return counts
}
