package sqlite_test

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
	"github.com/orderstate/orderstate/engine/sqlite"
	sm "github.com/orderstate/orderstate/statemachine"
)

func mustInspect(t *testing.T, path string) *sqlite.Inspector {
	t.Helper()
	in, err := sqlite.Inspect(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { in.Close() })
	return in
}

// ingest stores ev and requires it to have the result want.
func ingest(t *testing.T, db *sqlite.DB, ev engine.Event, want sm.Result) {
	t.Helper()
	res, err := db.Ingest(context.Background(), ev, req(`{"id":"`+ev.EventID+`"}`))
	require.NoError(t, err)
	require.Equal(t, want, res.Result, ev.EventID)
}

func TestInspect_NoFileIsNotFoundAndNotCreated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "none.db")
	_, err := sqlite.Inspect(context.Background(), path)
	require.Equal(t, engine.ENOTFOUND, engine.ErrorCode(err))
	require.NoFileExists(t, path)
}

func TestInspect_NotAStoreIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	text := []byte("not a database, just some text that is long enough")
	require.NoError(t, os.WriteFile(notes, text, 0o644))
	_, err := sqlite.Inspect(ctx, notes)
	require.ErrorContains(t, err, "not a database")
	got, err := os.ReadFile(notes)
	require.NoError(t, err)
	require.Equal(t, text, got, "left as it was")

	// Another program's database opens, and its first read fails.
	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", "file:"+other)
	require.NoError(t, err)
	_, err = db.Exec(`CREATE TABLE notes (body TEXT)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	in := mustInspect(t, other)
	_, _, err = in.Watermark(ctx, "demo")
	require.ErrorContains(t, err, "no such table")
}

// The inspector reads what the store holds while the store is open, as the
// demo reads its sidecar's store.
func TestInspector_ReadsWhatTheStoreHolds(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	path := filepath.Join(t.TempDir(), "o.db")
	db := mustOpen(t, path, c)
	register(t, db, "order_1", "chk_1", 100)
	register(t, db, "order_2", "chk_2", 300)
	ingest(t, db, event("e1", sm.KindCheckoutCreated, "chk_1", 0), sm.Applied)
	ingest(t, db, event("e2", sm.KindPaid, "chk_1", 100), sm.Applied)
	ingest(t, db, event("e2", sm.KindPaid, "chk_1", 100), sm.Duplicate)
	ingest(t, db, event("e3", sm.KindPaymentProcessing, "chk_x", 0), sm.Applied) // an order nobody registered
	swept := c.Now().Add(-time.Hour)
	require.NoError(t, db.SetWatermark(ctx, "sweep", swept))

	in := mustInspect(t, path)
	orders, err := in.Orders(ctx)
	require.NoError(t, err)
	require.Equal(t, []sqlite.OrderState{
		{OrderID: "order_1", Provider: "tazapay", CheckoutID: "chk_1", State: sm.Paid},
		{OrderID: "order_2", Provider: "tazapay", CheckoutID: "chk_2", State: sm.Pending},
		{OrderID: "", Provider: "tazapay", CheckoutID: "chk_x", State: sm.Processing},
	}, orders)

	open, err := db.Anomalies(ctx, engine.AnomalyFilter{Status: engine.StatusOpen, Limit: 100})
	require.NoError(t, err)
	require.NotEmpty(t, open, "the redelivery raised one")
	counts, err := in.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, sqlite.Counts{Orders: 3, Events: 3, Duplicates: 1, OpenAnomalies: int64(len(open))}, counts)

	for _, tc := range []struct {
		id    string
		state sm.State
		found bool
	}{{"chk_1", sm.Paid, true}, {"chk_2", sm.Pending, true}, {"chk_x", sm.Processing, true}, {"chk_none", "", false}} {
		state, found, err := in.StateOf(ctx, "tazapay", tc.id)
		require.NoError(t, err)
		require.Equal(t, tc.found, found, tc.id)
		require.Equal(t, tc.state, state, tc.id)
	}
	_, found, err := in.StateOf(ctx, "yoco", "chk_1")
	require.NoError(t, err)
	require.False(t, found, "ids are per provider")

	for _, tc := range []struct {
		id   string
		want sqlite.OrderCheck
	}{
		{"chk_1", sqlite.OrderCheck{Found: true, State: sm.Paid, Replayed: sm.Paid, Events: 3, Registered: true, Amount: 100}},
		{"chk_2", sqlite.OrderCheck{Found: true, State: sm.Pending, Replayed: sm.Pending, Registered: true, Amount: 300}},
		{"chk_x", sqlite.OrderCheck{Found: true, State: sm.Processing, Replayed: sm.Processing, Events: 1}},
		{"chk_none", sqlite.OrderCheck{}},
	} {
		c, err := in.CheckOrder(ctx, "tazapay", tc.id)
		require.NoError(t, err)
		require.Equal(t, tc.want, c, tc.id)
	}

	for _, tc := range []struct {
		key               string
		stored, redeliver int
	}{{"e1", 1, 0}, {"e2", 1, 1}, {"e3", 1, 0}, {"e4", 0, 0}} {
		n, err := in.Stored(ctx, "tazapay", tc.key)
		require.NoError(t, err)
		require.Equal(t, tc.stored, n, tc.key)
		n, err = in.Redelivered(ctx, "tazapay", tc.key)
		require.NoError(t, err)
		require.Equal(t, tc.redeliver, n, tc.key)
	}
	n, err := in.Stored(ctx, "yoco", "e1")
	require.NoError(t, err)
	require.Zero(t, n, "keys are per provider")
	originals, err := in.Originals(ctx)
	require.NoError(t, err)
	require.Len(t, originals, 3)
	for _, key := range []string{"e1", "e2", "e3", "e4"} {
		n, err := in.Stored(ctx, "tazapay", key)
		require.NoError(t, err)
		require.Equal(t, n, originals.Stored("tazapay", key), key)
	}
	require.Zero(t, originals.Stored("yoco", "e1"))

	at, ok, err := in.Watermark(ctx, "sweep")
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, swept.Equal(at), "%s, want %s", at, swept)
	_, ok, err = in.Watermark(ctx, "report")
	require.NoError(t, err)
	require.False(t, ok)

	bytes, err := in.EventBytes(ctx)
	require.NoError(t, err)
	require.Positive(t, bytes)

	audit, err := in.Audit(ctx)
	require.NoError(t, err)
	require.Equal(t, sqlite.Audit{OrdersWithoutEvents: 1, Integrity: "ok"}, audit, "order_2 has no event yet")

	// What the checks are for: a state its events do not make, an event
	// without its raw request.
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	_, err = raw.Exec(`UPDATE orders SET state = 'paid' WHERE checkout_id = 'chk_x'`)
	require.NoError(t, err)
	_, err = raw.Exec(`DELETE FROM raw_events WHERE event_id = (SELECT id FROM events WHERE provider_event_id = 'e3')`)
	require.NoError(t, err)
	require.NoError(t, raw.Close())
	check, err := in.CheckOrder(ctx, "tazapay", "chk_x")
	require.NoError(t, err)
	require.Equal(t, sqlite.OrderCheck{Found: true, State: sm.Paid, Replayed: sm.Processing, Events: 1, EventsWithoutRaw: 1}, check)
}

// A store a killed process left, its log holding commits and its shared
// memory gone, is read as the process left it.
func TestInspector_ReadsAStoreACrashLeft(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, "o.db")
	db := mustOpen(t, path, c)
	register(t, db, "order_1", "chk_1", 100)
	for i, kind := range []sm.Kind{sm.KindCheckoutCreated, sm.KindPaymentProcessing, sm.KindPaid} {
		ingest(t, db, event("e"+string(rune('1'+i)), kind, "chk_1", 100), sm.Applied)
	}
	// What the disk holds at the kill: the log first, since a checkpoint
	// may be copying it into the database meanwhile, and no -shm.
	crashed := filepath.Join(t.TempDir(), "o.db")
	copyFile(t, path+"-wal", crashed+"-wal")
	copyFile(t, path, crashed)
	fi, err := os.Stat(crashed + "-wal")
	require.NoError(t, err)
	require.Positive(t, fi.Size(), "the log holds the commits: reading it needs its index rebuilt")
	require.NoFileExists(t, crashed+"-shm")

	in := mustInspect(t, crashed)
	state, ok, err := in.StateOf(ctx, "tazapay", "chk_1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, sm.Paid, state)
	counts, err := in.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), counts.Events)
	audit, err := in.Audit(ctx)
	require.NoError(t, err)
	require.Equal(t, sqlite.Audit{Integrity: "ok"}, audit)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.Create(to)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

func TestInspector_DigestChangesWithTheRows(t *testing.T) {
	t.Parallel()
	ctx, c := context.Background(), newClock()
	path := filepath.Join(t.TempDir(), "o.db")
	db := mustOpen(t, path, c)
	register(t, db, "order_1", "chk_1", 100)
	in := mustInspect(t, path)
	before, err := in.Digest(ctx)
	require.NoError(t, err)
	require.Contains(t, before, "events")
	require.Contains(t, before, "orders")
	again, err := in.Digest(ctx)
	require.NoError(t, err)
	require.Equal(t, before, again)

	ingest(t, db, event("e1", sm.KindPaid, "chk_1", 100), sm.Applied)
	after, err := in.Digest(ctx)
	require.NoError(t, err)
	for _, tbl := range []string{"events", "raw_events", "orders"} {
		require.NotEqual(t, before[tbl], after[tbl], tbl)
	}
	require.Equal(t, before["reports"], after["reports"])
	require.Equal(t, before["migrations"], after["migrations"])
}

// A tool that marks a store, runs against it and trims it back leaves it
// as it found it: the same rows in every table.
func TestMark_TrimToTakesTheStoreBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "large.db")
	require.NoError(t, sqlite.BulkLoad(ctx, path, sqlite.BulkSpec{Orders: 40, EventsPerOrder: 3, BodyBytes: 200, Seed: 1}, nil))
	c := newClock()
	db, err := sqlite.Open(ctx, path, sqlite.Options{Now: c.Now})
	require.NoError(t, err)
	require.NoError(t, db.SetWatermark(ctx, "sweep", c.Now()))
	require.NoError(t, db.Close())

	in := mustInspect(t, path)
	mark, err := in.Mark(ctx)
	require.NoError(t, err)
	before, err := in.Digest(ctx)
	require.NoError(t, err)
	require.NoError(t, in.Close())

	// A run: new orders, their events and anomalies, a report, the
	// watermarks moved and added.
	db, err = sqlite.Open(ctx, path, sqlite.Options{Now: c.Now})
	require.NoError(t, err)
	register(t, db, "run_1", "chk_run_1", 100)
	ingest(t, db, event("run_e1", sm.KindPaid, "chk_run_1", 100), sm.Applied)
	ingest(t, db, event("run_e1", sm.KindPaid, "chk_run_1", 100), sm.Duplicate)
	ingest(t, db, event("run_e2", sm.KindPaymentProcessing, "chk_run_x", 0), sm.Applied)
	c.Add(time.Hour)
	require.NoError(t, db.SetWatermark(ctx, "sweep", c.Now()))
	require.NoError(t, db.SetWatermark(ctx, "report", c.Now()))
	_, err = db.SaveReport(ctx, engine.StoredReport{CreatedAt: c.Now(), PeriodStart: c.Now().Add(-time.Hour), PeriodEnd: c.Now(),
		JSON: []byte(`{}`), Markdown: "# report", HTML: "<h1>report</h1>"})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	in = mustInspect(t, path)
	during, err := in.Digest(ctx)
	require.NoError(t, err)
	require.NotEqual(t, before, during)
	require.NoError(t, in.Close())

	require.NoError(t, sqlite.TrimTo(ctx, path, mark))
	after, err := mustInspect(t, path).Digest(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after)
	fi, err := os.Stat(path + "-wal")
	if err == nil {
		require.Zero(t, fi.Size(), "the log is truncated")
	}
}

func TestBareCommitRate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bare.db")
	rate, err := sqlite.BareCommitRate(context.Background(), path, 2048, 200*time.Millisecond)
	require.NoError(t, err)
	require.Positive(t, rate)
	require.FileExists(t, path)
}
